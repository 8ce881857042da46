"""``streamdp eval``: privacy-utility evaluation against real face recognisers.

Modules: ``dataset`` (identity folders + splits), ``settings`` (mechanism specs), ``baselines``
(the ``identity`` control and DP-Pix), ``adversaries`` (pluggable recognisers: dlib ResNet,
FaceNet), ``metrics`` (protection, rank-1, verification, SSIM, keypoints, flicker; numpy only),
``cache`` (descriptor cache), ``runner`` (drives the phases: gallery, probes, video attack) with
``worker`` (the worker processes' state and pool), ``measure`` (cached detections and descriptors),
``probe`` and ``video_attack`` (the tasks), ``model_snapshot``, ``progress``, ``aggregate`` (records ->
rows) and ``options`` (``EvalOptions``, ``EvalRun``), ``report`` (writes results.md/CSV/JSON; the tables
in ``tables``/``matched``, the figures in ``plots``, number formats in ``formatting``), ``cli``
(``add_eval_parser``). See docs/results.md.

Importing this package loads nothing heavy: dlib, FaceNet and matplotlib are imported only when
used (the ``eval`` extra).
"""
