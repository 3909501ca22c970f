"""Reading, finding and writing medical images (SimpleITK underneath).

* :mod:`~SARCore.io.readers`   - ``read_image`` / ``read_label`` with validation
  (:mod:`~SARCore.io.nifti_check` adds the raw NIfTI checks ITK does not make),
* :mod:`~SARCore.io.discovery` - files, folders, DICOM series, MSD and BraTS layouts ->
  :class:`CaseSpec` list,
* :mod:`~SARCore.io.writers`   - atomic image writing,
* :mod:`~SARCore.io.geometry`  - spacing/origin/direction bookkeeping and grid checks,
* :mod:`~SARCore.io.arrays`    - sitk <-> ``[x, y, z]`` numpy arrays,
* :mod:`~SARCore.io.checksum`  - SHA-256 of source and output files.
"""
