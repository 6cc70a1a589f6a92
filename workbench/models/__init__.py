"""Pretrained models, a stage of their own: which exist (:mod:`~workbench.models.catalog`), how an offline GGUF
becomes a folder transformers reads (:mod:`~workbench.models.convert`), where converted models live and the check
of a copy (:mod:`~workbench.models.cache`), and the one checkpoint loader (:mod:`~workbench.models.loading`)."""
