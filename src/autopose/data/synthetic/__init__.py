"""The built-in synthetic pose set: articulated, shaded human figures in cluttered scenes.

``generate`` writes a COCO-format keypoint set; ``ensure_synthetic`` returns the default
set from the cache (``$AUTOPOSE_CACHE`` or ``~/.cache/autopose``), generating it on first
use; ``run_synth_command`` is ``autopose data synth``. See ``docs/synthetic.md``.
"""

from autopose.data.synthetic.generator import (
    GENERATOR_VERSION, cache_dir, cache_root, ensure_synthetic, generate, render,
    run_synth_command,
)

__all__ = ["GENERATOR_VERSION", "cache_dir", "cache_root", "ensure_synthetic", "generate",
           "render", "run_synth_command"]
