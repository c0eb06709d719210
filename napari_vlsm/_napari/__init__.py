"""Everything that imports napari or Qt: the dock, its workers, layer I/O, samples, the launcher.

Nothing outside this package imports from it, so the core and the CLI stay free of Qt.
Submodules are imported by napari through the manifest (``napari.yaml``) when needed.
"""
