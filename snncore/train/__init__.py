"""Training utilities: the ``Trainer`` loop, spiking losses, checkpoints and DDP helpers."""
from .checkpoint import load_checkpoint, save_checkpoint
from .distributed import distributed_loader, init_distributed, is_main_process, wrap_ddp
from .loop import Trainer
from .losses import firing_rate, rate_cross_entropy, rate_mse, tet_loss

__all__ = ["Trainer", "rate_cross_entropy", "rate_mse", "tet_loss", "firing_rate", "save_checkpoint",
           "load_checkpoint", "init_distributed", "is_main_process", "wrap_ddp", "distributed_loader"]
