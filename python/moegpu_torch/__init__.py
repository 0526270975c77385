"""moegpu's model family in PyTorch, for training beyond one machine.

``MoegpuModel(config)`` is a torch.nn.Module built from a moegpu
config.json; ``load(dir)`` and ``save(model, dir)`` read and write moegpu
checkpoint directories (same tensor names, dtypes, config.json; nothing
converted), so a model trained here runs in moegpu and the other way round.
``train.py`` trains it under torchrun with DistributedDataParallel on
moegpu's synthetic tasks (``tasks``). See the README section "Train bigger
elsewhere, run here".
"""

from .checkpoint import CheckpointError, load, save
from .config import Config, ConfigError
from .model import IGNORE, PAD, LossOutput, MoegpuModel, ModelOutput

__all__ = ["MoegpuModel", "ModelOutput", "LossOutput", "Config", "ConfigError", "load", "save",
           "CheckpointError", "PAD", "IGNORE"]
