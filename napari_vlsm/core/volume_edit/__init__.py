"""Editing a volume's label map the way clinicians correct it (no napari, no Qt).

- :mod:`.fill_between`: masks for the slices between corrected (key) slices, by shape-based
  interpolation of signed distance maps, one structure at a time.
- :mod:`.cleanup`: 3D clean-up of one structure (largest component, enclosed holes, small islands
  in mm³).
- :mod:`.statistics`: per-structure volume (mL), voxel count, intensity mean/std and slice range.

See docs/volumes.md ("Correcting a volume").
"""
