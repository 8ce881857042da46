"""The photorealistic face generator behind dp-image (MobileStyleGAN, from the ``random-face`` wheel).

``backend``: finds the generator's files in the installed ``random-face`` package and runs its two
networks (mapping z -> w, synthesis w -> 1024x1024 RGB) on onnxruntime (CUDA when there is one;
the IR is converted to ONNX once and cached, see ``ir2onnx``) or on OpenVINO (CPU).
``latent``: the released latent space (a whitened PCA subspace of w), the yaw direction, and how
a released latent becomes a full w. ``render``: a released latent -> aligned face crops at a few
yaw steps, with their own keypoints.
"""
