"""Moved to ``streamdp.detect.blazeface`` (the batched ONNX BlazeFace runner); this name stays for
existing imports."""

from .detect.blazeface import (  # noqa: F401
    INPUT_SIZE,
    MIN_SUPPRESSION_THRESHOLD,
    NUM_ANCHORS,
    NUM_KEYPOINTS,
    ONNX_FILENAME,
    SCORE_CLIPPING_THRESH,
    BlazeFaceRunner,
    BoxMode,
    Result,
    decode,
    default_onnx_path,
    letterbox,
    letterbox_matrix,
    select_providers,
    ssd_anchors,
    weighted_nms,
)

__all__ = ["INPUT_SIZE", "MIN_SUPPRESSION_THRESHOLD", "NUM_ANCHORS", "NUM_KEYPOINTS", "ONNX_FILENAME", "SCORE_CLIPPING_THRESH",
           "BlazeFaceRunner", "BoxMode", "Result", "decode", "default_onnx_path", "letterbox", "letterbox_matrix",
           "select_providers", "ssd_anchors", "weighted_nms"]
