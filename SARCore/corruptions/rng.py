"""Random draws for the corruption samplers, taken from one ``torch.Generator``.

Every sampler draws through a :class:`RandomSource`, so a whole batch's corruption is
reproducible from one generator. Draws happen on the generator's device (or the batch's
device when no generator is given):

* on **CPU** the source seeds a NumPy PCG64 stream from the torch generator and draws
  from it. Torch's CPU ``uniform_`` runs about 8x slower than NumPy here, and NumPy's
  ``Generator.permuted`` shuffles many small rows in C where torch must sort random keys;
  the corruption is still a pure function of the torch generator's state.
* on **CUDA** (or any other device) the source draws with torch on that device, so the
  noise volumes and permutations are made on the GPU.

The same seed therefore gives the same corruption on every machine for a CPU generator,
and a (different but equally distributed) corruption for a CUDA generator.
"""

from __future__ import annotations

import numpy as np
import torch

_SEED_HIGH = 2**63 - 1


def sampling_device(generator: torch.Generator | None, device: torch.device | str) -> torch.device:
    """Where the random numbers are drawn: the generator's device, else ``device``."""
    return torch.device(generator.device) if generator is not None else torch.device(device)


def leading_successes(u: torch.Tensor, prob: float) -> torch.Tensor:
    """Per row, how many draws of ``u (B, K)`` in a row fall below ``prob``: the count of
    MG's ``while random() < prob`` loops capped at K."""
    return torch.cumprod((u < prob).long(), dim=1).sum(dim=1)


class RandomSource:
    """Uniform floats, bounded integers and row permutations from one torch generator.

    ``use_numpy`` forces the backend (``None``: NumPy on CPU, torch elsewhere); tests use
    it to run the torch path that CUDA takes on a CPU-only machine.
    """

    def __init__(
        self,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        use_numpy: bool | None = None,
    ) -> None:
        self.generator = generator
        self.device = sampling_device(generator, device)
        if use_numpy is None:
            use_numpy = self.device.type == "cpu"
        if use_numpy and self.device.type != "cpu":
            raise ValueError(f"NumPy draws need a CPU generator, not one on {self.device}")
        self._numpy: np.random.Generator | None = None
        if use_numpy:
            seed = torch.randint(0, _SEED_HIGH, (1,), generator=generator, device=self.device)
            self._numpy = np.random.default_rng(int(seed))

    @property
    def uses_numpy(self) -> bool:
        return self._numpy is not None

    def uniform(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Tensor of ``shape`` uniform in [0, 1) (float32 or float64)."""
        if self._numpy is not None:
            np_dtype = np.float64 if dtype == torch.float64 else np.float32
            return torch.from_numpy(self._numpy.random(shape, dtype=np_dtype))
        return torch.rand(shape, generator=self.generator, device=self.device, dtype=dtype)

    def fill_uniform(self, out: torch.Tensor) -> torch.Tensor:
        """Fill contiguous float32/float64 ``out`` with uniforms in [0, 1), in place."""
        if self._numpy is not None:
            array = out.numpy()
            self._numpy.random(out=array, dtype=array.dtype)
            return out
        return out.uniform_(generator=self.generator)

    def integers(self, low: torch.Tensor | int, high: torch.Tensor | int, *shape: int,
                 dtype: torch.dtype = torch.int64) -> torch.Tensor:
        """Tensor of ``shape`` uniform in ``[low, high]`` (both ends included), int64 unless
        ``dtype`` says otherwise.

        ``low``/``high`` broadcast against ``shape``, like Python's ``random.randint``
        called once per element. NumPy draws them exactly; the torch backend takes
        ``low + floor(u * span)`` from float64 ``u`` (bias below 1e-14 for these spans).
        """
        low_t = torch.as_tensor(low, dtype=torch.int64, device=self.device)
        high_t = torch.as_tensor(high, dtype=torch.int64, device=self.device)
        if self.device.type == "cpu" and bool((high_t < low_t).any()):  # no GPU sync
            raise ValueError("integers: empty range (high < low)")
        if self._numpy is not None:
            np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
            drawn = self._numpy.integers(low_t.numpy(), high_t.numpy(), size=shape,
                                         endpoint=True, dtype=np_dtype)
            return torch.from_numpy(np.asarray(drawn, dtype=np_dtype))
        return (low_t + self.below((high_t - low_t + 1).expand(shape))).to(dtype)

    def below(self, span: torch.Tensor) -> torch.Tensor:
        """Integers shaped and typed like ``span``, element ``i`` uniform in ``[0, span[i])``.

        ``floor(u * span)`` from float64 uniforms ``u`` (bias below 1e-14 for spans under
        100): one uniform per element, several times faster than NumPy's exact bounded
        draws when every element has its own bound.
        """
        if self._numpy is not None:
            u = self._numpy.random(tuple(span.shape))
            np.multiply(u, span.numpy(), out=u)
            # NumPy's cast truncates like torch's ``.to`` and runs ~10x faster here.
            drawn = torch.from_numpy(u.astype(span.numpy().dtype))
        else:
            drawn = (self.uniform(*span.shape, dtype=torch.float64) * span).to(span.dtype)
        return torch.minimum(drawn, span - 1, out=drawn)

    def permutations(self, rows: int, n: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """``(rows, n)`` int32 tensor whose rows are independent uniform permutations of
        0..n-1, written into ``out`` when given.

        Argsort of i.i.d. float32 keys (NumPy's row sort is the fastest option here); two
        equal keys, which a 108-voxel row shows with probability < 4e-4, leave their
        order to the sort, a negligible departure from uniform.
        """
        if out is None:
            out = torch.empty((rows, n), dtype=torch.int32, device=self.device)
        if self._numpy is not None:
            keys = self._numpy.random((rows, n), dtype=np.float32)
            np.copyto(out.numpy(), keys.argsort(axis=1), casting="unsafe")
        else:
            keys = torch.rand((rows, n), generator=self.generator, device=self.device)
            out.copy_(keys.argsort(dim=1))
        return out
