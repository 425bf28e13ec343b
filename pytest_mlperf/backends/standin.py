"""Stand-in models for the local backend: small, seeded numpy networks, one per MLPerf inference benchmark.

They are NOT the MLPerf models. Each does real work per sample (matrix products, a recurrence), shaped like
the task it stands in for, so LoadGen measures a real workload. The system under test computes in float32;
accuracy mode compares its answers with a float64 run of the same weights, and reports the agreement scaled
to the benchmark's reference score, so the round's 99 % / 99.9 % rule judges it exactly as it judges
NVIDIA's accuracy.txt.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from ..catalog import Benchmark


@dataclass(frozen=True)
class AccuracyReport:
    """What an accuracy script prints: accuracy.txt's lines, and the value they state."""

    metric: str
    value: float
    lines: list[str]


class LocalModel:
    """What the local backend needs of a model; users may supply their own through pytest_mlperf_make_sut.

    predict() takes sample indices and returns one numpy array per sample (the bytes LoadGen logs);
    score() turns {sample index: response bytes} from mlperf_log_accuracy.json into an AccuracyReport.
    """

    name = "model"
    total_samples = 1024
    performance_samples = 1024
    batch_size = 32
    stand_in = False

    def load(self, indices: list[int]) -> None:
        """Bring samples into memory (LoadGen's load_samples_to_ram); data here is resident already."""

    def predict(self, indices: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def score(self, responses: dict[int, bytes]) -> AccuracyReport:
        raise NotImplementedError


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


class _StandIn(LocalModel):
    stand_in = True
    metric = ""

    def __init__(self, benchmark: Benchmark, samples: int = 1024, seed: int = 2022):
        self.benchmark = benchmark
        self.name = f"stand-in {benchmark.model}"
        self.total_samples = self.performance_samples = samples
        rng = _rng(seed)
        self.inputs64 = self._make_inputs(rng, samples)
        self.weights64 = self._make_weights(rng)
        self.inputs32 = self.inputs64.astype(np.float32)
        self.weights32 = {k: v.astype(np.float32) for k, v in self.weights64.items()}
        self._reference: dict[int, np.ndarray] = {}

    # subclasses: inputs, weights, forward (array-in, answers-out), agreement of two answers
    def _make_inputs(self, rng, samples) -> np.ndarray:
        raise NotImplementedError

    def _make_weights(self, rng) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _forward(self, x: np.ndarray, w: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def _agreement(self, got: np.ndarray, want: np.ndarray) -> float:
        return float(np.array_equal(got, want))

    answer_dtype = np.int32

    def predict(self, indices: np.ndarray) -> list[np.ndarray]:
        return self._forward(self.inputs32[indices], self.weights32)

    def references(self, indices: list[int]) -> dict[int, np.ndarray]:
        """The float64 answers, computed once, in batches."""
        missing = [i for i in indices if i not in self._reference]
        for start in range(0, len(missing), 256):
            chunk = missing[start : start + 256]
            for index, answer in zip(chunk, self._forward(self.inputs64[chunk], self.weights64), strict=True):
                self._reference[index] = answer
        return {i: self._reference[i] for i in indices}

    def score(self, responses: dict[int, bytes]) -> AccuracyReport:
        if not responses:
            raise ValueError("no responses in the accuracy log")
        agreements = []
        references = self.references(sorted(responses))
        for index, data in sorted(responses.items()):
            want = references[index]
            got = np.frombuffer(data, dtype=want.dtype).reshape(want.shape)
            agreements.append(self._agreement(got, want))
        agreement = float(np.mean(agreements))
        value = self.benchmark.reference * agreement
        note = (
            f"stand-in model, not the MLPerf model: float32 answers agree with the float64 reference on "
            f"{agreement * 100:.3f}% of {len(agreements)} samples; reported as {agreement:.5f} x the MLPerf "
            f"reference {self.benchmark.reference:g}"
        )
        return AccuracyReport(self.benchmark.metric, value, [note, *self._score_lines(value, agreement)])

    def _score_lines(self, value: float, agreement: float) -> list[str]:
        raise NotImplementedError


class BertStandIn(_StandIn):
    """Question answering: token features -> two residual tanh layers -> start/end logits -> best span."""

    seq, dim, hidden = 128, 64, 128
    batch_size = 64

    def _make_inputs(self, rng, samples):
        return rng.standard_normal((samples, self.seq, self.dim))

    def _make_weights(self, rng):
        return {
            "w1": rng.standard_normal((self.dim, self.hidden)) / np.sqrt(self.dim),
            "w2": rng.standard_normal((self.hidden, self.hidden)) / np.sqrt(self.hidden),
            "head": rng.standard_normal((self.hidden, 2)) / np.sqrt(self.hidden),
        }

    def _forward(self, x, w):
        h = np.tanh(x @ w["w1"])
        h = h + np.tanh(h @ w["w2"])
        logits = h @ w["head"]  # [batch, seq, 2]
        start = logits[:, :, 0].argmax(axis=1)
        end = logits[:, :, 1].argmax(axis=1)
        return [np.array([s, e], dtype=np.int32) for s, e in zip(start, end, strict=True)]

    def _agreement(self, got, want):
        # token-overlap F1 of the two spans, the SQuAD way
        g0, g1 = sorted(got.tolist())
        w0, w1 = sorted(want.tolist())
        overlap = max(0, min(g1, w1) - max(g0, w0) + 1)
        if overlap == 0:
            return 0.0
        precision, recall = overlap / (g1 - g0 + 1), overlap / (w1 - w0 + 1)
        return 2 * precision * recall / (precision + recall)

    def _score_lines(self, value, agreement):
        return [f'{{"exact_match": {agreement * 100:.6f}, "f1": {value:.10f}}}']


class RnntStandIn(_StandIn):
    """Speech to text: feature frames -> tanh recurrence -> per-frame token -> greedy CTC-style collapse."""

    frames, feats, hidden, vocab = 96, 64, 128, 29
    batch_size = 64
    answer_dtype = np.int32

    def _make_inputs(self, rng, samples):
        return rng.standard_normal((samples, self.frames, self.feats))

    def _make_weights(self, rng):
        return {
            "wx": rng.standard_normal((self.feats, self.hidden)) / np.sqrt(self.feats),
            "wh": rng.standard_normal((self.hidden, self.hidden)) / np.sqrt(self.hidden) * 0.9,
            "wo": rng.standard_normal((self.hidden, self.vocab)) / np.sqrt(self.hidden),
        }

    def _forward(self, x, w):
        batch = x.shape[0]
        h = np.zeros((batch, self.hidden), dtype=x.dtype)
        projected = x @ w["wx"]
        tokens = np.empty((batch, self.frames), dtype=np.int32)
        for t in range(self.frames):
            h = np.tanh(projected[:, t] + h @ w["wh"])
            tokens[:, t] = (h @ w["wo"]).argmax(axis=1)
        out = []
        for row in tokens:
            keep = np.concatenate(([True], row[1:] != row[:-1])) & (row != 0)  # 0 is the blank
            text = np.full(self.frames, -1, dtype=np.int32)
            kept = row[keep]
            text[: len(kept)] = kept
            out.append(text)
        return out

    def _agreement(self, got, want):
        hyp, ref = got[got >= 0].tolist(), want[want >= 0].tolist()
        if not ref:
            return float(not hyp)
        return max(0.0, 1.0 - _edit_distance(hyp, ref) / len(ref))

    def _score_lines(self, value, agreement):
        wer = 100.0 - value
        return [f"Word Error Rate: {wer:.10f}%, accuracy={value:.10f}%"]


class SsdStandIn(_StandIn):
    """Detection: image -> relu features -> per-anchor class scores and boxes -> top detections."""

    image, anchors, classes, top = 32 * 32 * 3, 32, 8, 4
    hidden = 256
    batch_size = 64
    answer_dtype = np.float32

    def _make_inputs(self, rng, samples):
        return rng.standard_normal((samples, self.image))

    def _make_weights(self, rng):
        return {
            "w1": rng.standard_normal((self.image, self.hidden)) / np.sqrt(self.image),
            "cls": rng.standard_normal((self.hidden, self.anchors * self.classes)) / np.sqrt(self.hidden),
            "box": rng.standard_normal((self.hidden, self.anchors * 4)) / np.sqrt(self.hidden),
        }

    def _forward(self, x, w):
        h = np.maximum(x @ w["w1"], 0)
        scores = (h @ w["cls"]).reshape(-1, self.anchors, self.classes)
        boxes = 1 / (1 + np.exp(-(h @ w["box"]).reshape(-1, self.anchors, 4)))
        best_class = scores.argmax(axis=2)
        best_score = scores.max(axis=2)
        order = np.argsort(-best_score, axis=1, kind="stable")[:, : self.top]
        out = []
        for i in range(x.shape[0]):
            rows = []
            for a in order[i]:
                x0, y0, x1, y1 = boxes[i, a]
                rows.append([best_class[i, a], best_score[i, a], min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)])
            out.append(np.asarray(rows, dtype=np.float32))
        return out

    def _agreement(self, got, want):
        matched = 0
        for ref in want:
            for det in got:
                if int(det[0]) == int(ref[0]) and _iou(det[2:], ref[2:]) >= 0.5:
                    matched += 1
                    break
        return matched / len(want)

    def _score_lines(self, value, agreement):
        return [f"mAP={value:.3f}%"]


class SsdMobilenetStandIn(SsdStandIn):
    """The small detector."""

    hidden = 512


class SsdResnetStandIn(SsdStandIn):
    """The larger detector: a wider feature layer than the mobilenet stand-in."""

    hidden = 1024
    batch_size = 32


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _edit_distance(a: list, b: list) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def stand_in_for(benchmark: Benchmark) -> LocalModel:
    """The stand-in the catalog names for a benchmark ("module:Class" in its entry, beside its data)."""
    if not benchmark.stand_in:
        raise LookupError(
            f"the catalog names no stand-in model for {benchmark.name}; supply one with pytest_mlperf_make_sut"
        )
    module, _, name = benchmark.stand_in.partition(":")
    return getattr(importlib.import_module(module), name)(benchmark)
