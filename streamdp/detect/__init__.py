"""Face detection: MediaPipe's short-range BlazeFace (run by ONNX Runtime, or by MediaPipe Tasks) on
the full frame plus a tile pyramid, with a second look at every uncertain candidate.

The short-range model sees a 128x128 letterboxed copy of whatever it is given and finds faces down
to about a tenth of that input's side (LFW faces pasted into street scenes: a box of ~0.10 of the
input is found about half of the time, ~0.12 nearly always). On a 1080p frame that is a ~200 px
face, so small faces need the frame searched in smaller pieces.

1. Search. The full frame every frame, letterboxed to 128x128, and a pyramid of finer levels for
   small faces: sizes ``s0, 2*s0, 4*s0, ...`` (each level while clearly smaller than the short
   side; ``s0`` = ``cfg.tile_size``: "auto" 224 for files, 384 live) plus the short side for a
   non-square frame (``tiles.plan_tiles``). A face is reliably found only where it is at least
   ~0.1 of the model's 128 px, so a level of size ``s`` finds faces from ~``0.1*s`` and the next
   one from ~``0.2*s``: no face size falls between two levels.
   ``cfg.search`` "canvas" (the files default, ``canvas``): each level is the frame downscaled by
   ``s/128`` in one model run (the network is convolutional: a bigger input is a grid of anchors
   over all of it; only the levels ``canvas.canvas_sizes`` keeps, neighbours up to 5x apart),
   mirrored 64 px beyond the searched edges, cut into overlapping bands that are
   dealt over ``cfg.tile_every`` frames (files: the look-back; live, opt-in: every frame). "tiles"
   (``schedule``; the live default, and what MediaPipe Tasks can run): overlapping 128x128 views of each level's size,
   ``frame i`` searching tiles ``i mod N``, plus mirrored edge tiles; an ``s``-grid with overlap
   ``o >= 0.25`` contains every face up to ``o*s`` whole (one 384-grid alone misses 150-250 px
   faces on 1080p whenever a tile border cuts them). Tracked faces are confirmed every frame in a
   view at the model's favourite scale. MediaPipe reports candidates down to ``cfg.min_confidence``.
2. Merge (``candidates``). Candidates go back to frame pixels. A tile candidate touching an inner tile border (not
   the frame's edge) is a cut face with a wrong box: dropped when an uncut candidate covers most
   of it. Then vectorized greedy NMS (higher score first; a lower-scored box almost entirely
   inside a kept one is dropped too — the kept box covers it).
3. Decide (``verify.plan_second_looks``). Tiles multiply the chances of a false positive (textures
   score 0.3-0.7 at the model's size floor): keeping every candidate >= 0.3 put a false face in
   45 of 69 face-free frames. So every candidate that is not already sure (>= ``ACCEPT_SCORE`` at
   a comfortable size) gets a second look in a crop of 2x its box, where the face fills half of
   the model's input — its sweet spot: there every real face we measured scores >= 0.80 and
   no non-face in the sample videos > 0.72. A face is kept when that look reaches
   ``max(cfg.min_confidence, cfg.verify_score)``, and the second look's box and keypoints replace the coarse ones. With the
   default config: 66/70 LFW faces of 44-140 px pasted into 720p/1080p street frames found (full
   frame alone: 2/70), no false detection in them, none in no_face.mp4's 95 frames, 2 of 130
   face-free bikes.mp4 frames.

Boxes are clipped to the frame; keypoints are not.

Model runner (``cfg.backend``, ``backends``): ``litert`` (the default on a CPU: ``litert``,
XNNPACK kernels), ``openvino`` (the default on a CPU with native bf16: ``openvino_engine``) and
``onnx`` (the default with CUDA; the same model converted to ONNX with a free input size) share ``blazeface``'s reimplementation of MediaPipe's letterbox, anchors, decoding and
weighted NMS and take a frame's views in one call; ``mediapipe`` runs MediaPipe Tasks'
FaceDetector, one call per image (tiles only). They find the same
faces (same count on 190 sample-video frames, boxes IoU >= 0.9, scores 0.0013 apart on average;
near-tied low scores on textures can cluster differently: docs/performance.md).

Cost (``benchmarks/detector.py``, 2-core VM, idle, every frame with the tile pass; images per
frame = 1 + tiles + second looks). Per 128x128 image: MediaPipe Tasks ~1.75 ms (its XNNPACK runs
on one thread); onnx ~1.6 ms with 1 intra-op thread and ~1.05 ms with 2 (the default), pre- and
post-processing included. The per-call overhead MediaPipe adds is small here (~0.15 ms, not the
3-4 ms once assumed); most of the gain is the second core, which the rest of the pipeline (x264,
the mechanism) also wants:

=========  ==================  ==========  =================
frame      images per frame    mediapipe   onnx (2 threads)
=========  ==================  ==========  =================
640x360    1 + 3 + ~1          8.8 ms      6.0 ms
1280x720   1 + 18 + ~4         40.5 ms     25.5 ms
1920x1080  1 + 37 + ~7.5       79.4 ms     47.8 ms
=========  ==================  ==========  =================

(onnx with 1 thread: 7.3, 36.4, 72.4 ms.) On a CPU every tile still costs ~1 ms of model time. ``cfg.tile_every`` amortizes the tile pass; the tracker covers in
between. ``FaceDetector.detect_batch`` batches several frames (for a GPU, where one big batch is
nearly as cheap as one image).

Cost now (2026-12-02, 720p files, the sample clip, one thread): 48 CPU ms a frame with onnx
tiles and two threads, 15.5 with the canvas search on LiteRT (docs/performance.md). The table
below is the tile search's, kept for the record.

Modules: ``detector`` (``FaceDetector``: a frame's views, one model call, merge, second looks),
``canvas`` (the canvas levels and bands), ``litert`` (the LiteRT runner),
``geometry`` (IoU, NMS, square crops), ``tiles`` (tile grids, edge tiles, mirroring),
``schedule`` (tiles per frame, the change gate), ``candidates`` (merging and finalizing),
``verify`` (second looks, confirmation views, rejection memory), ``backends`` (ONNX Runtime or
MediaPipe Tasks), ``blazeface`` (the batched ONNX runner), ``native`` (MediaPipe's stderr and
exit).
"""

from __future__ import annotations

from .backends import MODEL_FILENAME, default_model_path
from .detector import FaceDetector
from .geometry import box_ioa, box_iou, nms
from .tiles import Tile, plan_edge_tiles, plan_tiles

__all__ = ["MODEL_FILENAME", "FaceDetector", "Tile", "box_ioa", "box_iou", "default_model_path", "nms", "plan_edge_tiles",
           "plan_tiles"]
