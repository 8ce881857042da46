"""The second look: every unsure candidate is judged again in a crop where it fills half of the
model's input (the short-range model's sweet spot), and the confirmation views of tracked faces.

``plan_second_looks`` decides which candidates need a look and cuts their crops;
``apply_second_looks`` judges the looks' results. ``RejectMemory`` remembers the places a look
rejected a moment ago (a texture seen again is rejected without another look).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .candidates import SURE_REL, SURE_SCORE, Candidates, first_look_sure
from .geometry import box_iou, square_crop
from .schedule import ChangeGate
from .tiles import MirrorFrame

ACCEPT_SCORE = SURE_SCORE  # a tile candidate this confident (0.8), at a comfortable size, needs no second look
COMFORT_SIZE = SURE_REL  # box side / model input side (0.25) from which the model is reliable
VERIFY_CONTEXT = 2.0  # second-look crop side / box side: the face fills half the model's input
VERIFY_IOU = 0.2
MAX_VERIFY = 64  # second looks per frame at most (a texture seen again is remembered: see REJECT_MEMORY_FRAMES)
MAX_CONFIRM = 16  # tracked faces confirmed per frame at most
REJECT_MEMORY_FRAMES = 6  # a rejected place is rejected again without a look for this many frames (at least)
REJECT_STILL_FRAMES = 48  # ... and up to this many while the pixels under it do not change (the change gate)
REJECT_MEMORY_IOU = 0.6
REJECT_MEMORY_SLACK = 0.05  # ... unless the candidate now scores more than this above the rejected one

View = tuple[np.ndarray, int, int]  # an RGB image, and its top-left corner in the frame
Memory = tuple[np.ndarray, np.ndarray]  # boxes (M,4), scores (M,) a second look rejected lately
Rejected = list[tuple[np.ndarray, float]]  # box, first-look score


class RejectMemory:
    """Boxes and scores a second look rejected within the last ``frames`` frames of one stream
    (bounded: 256 at most). ``frames``: ``REJECT_MEMORY_FRAMES``, or one more than the search's
    spread when that is longer: a texture a band finds is found again by the same band one spread
    later, and would otherwise be looked at again every time. With the change gate (``gate``), a
    rejection lasts up to ``REJECT_STILL_FRAMES`` while the pixels under its box stay the same:
    same pixels, same verdict (a static texture is not looked at again and again); once they
    change it lasts the ordinary ``frames``."""

    def __init__(self, frames: int = REJECT_MEMORY_FRAMES) -> None:
        self.frames = max(REJECT_MEMORY_FRAMES, int(frames))
        self._rejects: list[tuple[np.ndarray, float, int, np.ndarray | None]] = []  # (box, score, frame index, patch)

    def recall(self, frame_index: int, gate: ChangeGate | None = None) -> Memory:
        def valid(r: tuple[np.ndarray, float, int, np.ndarray | None]) -> bool:
            age = frame_index - r[2]
            if 0 <= age < self.frames:
                return True
            return gate is not None and r[3] is not None and 0 <= age < REJECT_STILL_FRAMES and gate.same(r[0], r[3])

        self._rejects = [r for r in self._rejects if valid(r)]
        if not self._rejects:
            return np.zeros((0, 4)), np.zeros(0)
        return np.array([r[0] for r in self._rejects]), np.array([r[1] for r in self._rejects])

    def remember(self, frame_index: int, rejected: Rejected, gate: ChangeGate | None = None) -> None:
        self._rejects.extend((b, s_, frame_index, gate.patch(b) if gate is not None else None) for b, s_ in rejected)
        del self._rejects[:-256]  # bounded


def needs_confirmation(img: np.ndarray, box: np.ndarray) -> bool:
    """Whether a tracked face gets a confirmation view: not when that view would be about the
    whole frame again (the full view already is that look; the same rule as a second look's)."""
    size = float(max(box[2] - box[0], box[3] - box[1]))
    return VERIFY_CONTEXT * size < 0.9 * max(img.shape[:2])


def look_view(img: np.ndarray, box: np.ndarray) -> View | None:
    """The square crop of ``VERIFY_CONTEXT`` x the box around it (clipped to the frame): a second
    look's view, and a tracked face's confirmation view."""
    h, w = img.shape[:2]
    size = float(max(box[2] - box[0], box[3] - box[1]))
    if not np.isfinite(size) or size < 4:
        return None
    c = (box[:2] + box[2:]) / 2
    view, x0, y0 = square_crop(img, c, int(round(min(VERIFY_CONTEXT * size, max(w, h)))))
    if view.shape[0] < 4 or view.shape[1] < 4:
        return None
    return view, x0, y0


@dataclass
class LookPlan:
    """``keep``: the candidates kept without a second look (and the fallback for those over the
    cap); ``todo``: the candidates looked at again; ``looks``: their crops; ``again``: how many
    the rejection memory dropped."""

    keep: np.ndarray
    todo: np.ndarray
    looks: list[View]
    again: int = 0


def plan_second_looks(img: np.ndarray, c: Candidates, need: float, min_confidence: float,
                      padded: MirrorFrame | None = None, memory: Memory | None = None,
                      most: int = MAX_VERIFY) -> LookPlan:
    """Decide every candidate by the score the model gives it at its favourite scale.

    A face must reach ``need`` (the detector's ``new_face_score`` = ``max(cfg.min_confidence,
    verify_score)``) there. ``padded``: the frame seen mirror-padded when the edges are searched; ``memory``: ``RejectMemory.recall`` for a stream's consecutive frames.

    * confident (>= ``ACCEPT_SCORE``) at a comfortable size (box >= ``COMFORT_SIZE`` of the
      model's input) and not cut by a tile border -> kept as is (no non-face scored > 0.74);
    * a full-frame candidate so big that a second look would see the whole frame again: its
      own score is judged;
    * anything else (small in its input, from a tile, cut by a tile border, or unsure) gets a
      second look: a square crop of ``VERIFY_CONTEXT`` (2) x its box around it, where the face
      fills half of the model's input — the short-range model's sweet spot. The crop's
      matching detection is judged and, if kept, replaces the candidate (better box and
      keypoints);
    * beyond ``most`` (``MAX_VERIFY``) second looks per frame, candidates are kept on their first score
      if >= ``min_confidence`` (fail closed).

    Measured on 894 candidates (>= 0.2) from face-free video (no_face.mp4, bikes.mp4 parts),
    real faces (single_face, WolfgangLanger, face_noface, noface_face, carphone, bikes) and 60
    LFW faces of 50-200 px pasted at +-30 deg into 720p street frames: the 2x second look
    scores every one of 176 real faces >= 0.80, and 7 of 718 non-face candidates >= 0.7
    (1 of 261 from real face-free video). Over every face-free frame of the sample videos
    (no_face, the title parts of the HEVC clips, bikes) the best second look was 0.712 (the
    "am" of a cartoon title), hence the default ``verify_score`` = 0.75. A plain first-look threshold of
    0.3 kept 45 of 69 face-free frames; 0.7 on the first look would miss 1 real face in 20.
    """
    h, w = img.shape[:2]
    thr = float(min_confidence)
    if len(c) == 0:
        return LookPlan(np.zeros(0, bool), np.zeros(0, np.int64), [])
    boxes, scores = c.boxes, c.scores
    size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    sure = first_look_sure(c)
    # seen in a confirmation view, which is already a look at the favourite scale
    sure |= c.confirm & (scores >= need)
    # a second look would see about the full frame again: judge the full frame's look
    own_look = c.full & (VERIFY_CONTEXT * size >= 0.9 * max(w, h)) & ~sure
    keep = sure | (own_look & (scores >= need))
    todo = np.flatnonzero(~sure & ~own_look)
    keep[todo] = scores[todo] >= thr  # the fallback for candidates over the cap
    again_n = 0
    if memory is not None and len(todo) and len(memory[0]):
        # A candidate where a second look rejected one a moment ago, scoring no better, is a
        # texture seen again: rejected without another look (bounded: the memory lasts
        # ``REJECT_MEMORY_FRAMES`` frames, then the place is looked at again).
        mem_boxes, mem_scores = memory
        iou = box_iou(boxes[todo], mem_boxes)
        again = ((iou >= REJECT_MEMORY_IOU) & (scores[todo, None] <= mem_scores[None, :] + REJECT_MEMORY_SLACK)).any(axis=1)
        keep[todo[again]] = False
        again_n = int(again.sum())
        todo = todo[~again]
    todo = todo[np.argsort(-scores[todo], kind="stable")][:most]
    looks = []
    for i in todo:
        centre = (boxes[i, :2] + boxes[i, 2:]) / 2
        side = int(round(min(VERIFY_CONTEXT * size[i], max(w, h))))
        at_edge = boxes[i, 0] < 1 or boxes[i, 1] < 1 or boxes[i, 2] > w - 1 or boxes[i, 3] > h - 1
        if padded is not None and at_edge:
            # a face cut by the frame's border is looked at again in the mirrored frame too
            p = padded.pad
            side = min(side, min(w, h) + 2 * p)
            x0 = int(np.clip(round(centre[0] - side / 2), -p, w + p - side))
            y0 = int(np.clip(round(centre[1] - side / 2), -p, h + p - side))
            looks.append((padded.crop(x0, y0, side), x0, y0))
            continue
        looks.append(square_crop(img, centre, side))
    return LookPlan(keep, todo, looks, again_n)


def apply_second_looks(c: Candidates, plan: LookPlan, results: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                       need: float, rejected: Rejected) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Keep a looked-at candidate when its second look's matching detection reaches ``need``;
    that detection's box and keypoints replace the candidate's. Returns the kept boxes, scores,
    keypoints and how many looks confirmed their candidate; the rejected ones are appended to
    ``rejected``."""
    if len(c) == 0:
        return c.boxes, c.scores, c.kps, 0
    boxes, scores = c.boxes, c.scores
    keep = plan.keep.copy()
    verified = 0
    out_b, out_s, out_k = boxes.copy(), scores.copy(), c.kps.copy()
    for i, (vb, vs, vk) in zip(plan.todo, results):
        j = _match(vb, boxes[i]) if len(vb) else -1
        if j >= 0 and vs[j] >= need:
            out_b[i], out_s[i], out_k[i] = vb[j], vs[j], vk[j]
            keep[i] = True
            verified += 1
        else:
            keep[i] = False
            rejected.append((boxes[i].copy(), float(scores[i])))
    return out_b[keep], out_s[keep], out_k[keep], verified


def _match(cand: np.ndarray, box: np.ndarray) -> int:
    """Index of the verification detection that is the candidate (best IoU, or centre inside), or -1."""
    iou = box_iou(cand, box[None])[:, 0]
    c = (cand[:, :2] + cand[:, 2:]) / 2
    inside = (c[:, 0] >= box[0]) & (c[:, 0] <= box[2]) & (c[:, 1] >= box[1]) & (c[:, 1] <= box[3])
    score = np.where((iou > VERIFY_IOU) | inside, iou + 1e-3, -1.0)
    j = int(np.argmax(score))
    return j if score[j] > 0 else -1
