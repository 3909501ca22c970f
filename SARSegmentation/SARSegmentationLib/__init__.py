"""GUI-free logic of the SAR Segmentation module (runs in Slicer and on PyPI slicer-core).

One job per file: ``Engine`` (where SARCore is, how to start it), ``JobRunner``/
``JobWatcher``/``Progress`` (background processes), ``Commands`` (panel settings -> CLI),
``SegmentRun``/``SegmentationLogic``/``MrmlIO`` (volumes out, segments in),
``DatasetExport`` (the correction loop), ``ModelRegistry``, ``DeviceInfo``,
``Dependencies``, ``Parameters``, ``Logic`` (the facade), ``Batch``, ``Headless``,
``QuickModel``; ``Widget``/``WidgetBindings`` are the Qt panel (Slicer only).
"""
