"""Where a model's module wraps another: the branches a manipulation built in code, named for a report.

Not a scored check: a weight file from elsewhere holds a stock architecture, so
the checks must flag it without this. For a model built in memory, it says
which branch the flagged channel comes from.
"""

from __future__ import annotations

from cam_jax.manipulations import combinators


def branches(module, channels: int) -> tuple[str, ...]:
    """One line per manipulation wrapper, outermost first; `channels` is K, A's channel count.

    Example:
      >>> from cam_jax import sticker_backdoor
      >>> for line in branches(sticker_backdoor(model).module, 33):
      ...     print(line)
      LogitBranch: g = ModuloShift(A[..., 32]) added to every logit
      AppendChannel: A[..., 32] = StickerDetector(x)
    """
    out, last = [], channels - 1  # the channel the wrapper at this depth reads or writes
    while isinstance(module, combinators.Wrapper):
        if isinstance(module, combinators.LogitBranch):
            out.append(f"LogitBranch: g = {type(module.g).__name__}(A[..., {last}]) added to every logit")
        elif isinstance(module, combinators.AppendChannel):
            out.append(f"AppendChannel: A[..., {last}] = {type(module.branch).__name__}(x)")
            last -= 1
        elif isinstance(module, combinators.AddToChannel):
            out.append(f"AddToChannel: A[..., {last}] += {type(module.branch).__name__}(x)")
        else:
            out.append(type(module).__name__)
        module = module.base
    if getattr(module, "appended", 0):
        first = last - module.appended + 1
        out.append(f"{type(module).__name__}: A[..., {first}:{last + 1}] from filters appended to its last conv")
    return tuple(out)
