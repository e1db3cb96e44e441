"""mdf-guard: predict the behavioural risk of a fine-tuning dataset before training (MDF)."""

__version__ = "0.1.0"
