"""The napari-free core: torch + transformers + numpy only. Never import napari or Qt here."""
