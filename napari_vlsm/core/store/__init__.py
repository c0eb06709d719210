"""The correction store: a clinician's corrected masks, saved so that none is ever lost or damaged.

A correction is hours of expert work, so the store is append-only, every write is committed by one
atomic directory rename, and reading never trusts what it finds on disk.

Layout::

    <root>/                                default: platformdirs.user_data_dir("napari-vlsm")
      store.json                                    / "projects" / "default"
      .lock                                the inter-process lock (fcntl.flock)
      samples/
        <sample_id>/                       sample_id = "<yyyymmddThhmmssffffff UTC>-<8 hex>"
          image.tif                        the 2D slice, lossless, its own dtype (grey or RGB)
          mask.png                         the corrected mask, uint8 0/255
          proposal.png                     the model's proposal it corrects (optional), 0/255
          meta.json                        {schema, id, prompts, target, source, slice_index,
                                            split, created, image_shape, image_dtype, proposal,
                                            window}
        .tmp-<sample_id>/                  a sample being written (never read)
        .trash-<sample_id>/                a sample being removed (never read)

Atomicity: ``add`` writes every file of a sample into ``samples/.tmp-<id>/`` (each file fsynced,
then the directory), then renames the directory to ``samples/<id>`` and fsyncs ``samples/``. The
rename is the commit point: a crash before it leaves a ``.tmp-`` directory that loading ignores
(and deletes once it is an hour old); after it, the sample is complete. ``add`` returns only after
the commit, so an acknowledged correction is durable. ``remove`` renames to ``.trash-<id>`` first.

Split: decided once per sample when it is added, saved in meta.json, never re-drawn (so a sample
used for validation never leaks into training). Per target, the first sample is "train" (training
can start from one correction), the second is "val", and afterwards a sample is "val" while the
target has fewer than ``round(0.2 * total)`` validation samples (about 20 %).

Replace: adding with the same (target, source, slice_index) as an existing sample (non-empty
source) replaces it and keeps its split. The new sample is committed first and the old one removed
afterwards; a crash in between leaves both and loading keeps the newest (ids sort by time).

Concurrency: ``add`` and ``remove`` hold an exclusive ``fcntl.flock`` on ``<root>/.lock`` (two
napari windows, the CLI and a training job can share a store); the split decision, the id (always
later than every committed id) and the commit happen under it. Readers take no lock: thanks to the
rename they see a sample entirely or not at all. Damaged sample directories are skipped with a
:class:`DamagedSampleWarning`, never a crash, and never deleted: a person may be able to rescue them.

Modules: ``records`` (the sample record, metadata checks, the split rule), ``files`` (bytes on
disk, the lock), ``correction_store`` (the store itself).
"""

from .correction_store import CorrectionStore, default_root
from .records import DamagedSampleWarning, Sample, SampleInfo, decide_split, normalize_target

__all__ = ["CorrectionStore", "DamagedSampleWarning", "Sample", "SampleInfo", "decide_split", "default_root", "normalize_target"]
