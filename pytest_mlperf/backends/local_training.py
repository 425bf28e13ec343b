"""The local training run: a small BERT-style masked-LM (PyTorch, CPU) trained on a generated corpus until its
masked-LM accuracy reaches the round's target, logging MLLOG lines the way MLPerf training logs them.

It is a stand-in for NVIDIA's BERT, not the MLPerf model: the value is the flow (MLLOG, convergence verdict,
metrics, reports), which is the same code that judges NVIDIA's published logs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..catalog import TrainingCase
from . import Artifacts, ResultMissing

INSTALL_HINT = "the local training run needs PyTorch: pip install 'pytest-mlperf[train]' torch==2.13.0"

VOCAB, SEQ, MASK_ID = 48, 32, 0
BATCH, EVAL_SEQS, EVAL_EVERY = 64, 512, 25
MAX_STEPS = 1500
LEARNING_RATE = 3e-3


class MllogWriter:
    """Writes `:::MLLOG {json}` lines with the keys and event types of MLPerf training logs."""

    def __init__(self, path: Path):
        self.fh = path.open("w", encoding="utf-8")

    def event(self, key: str, value=None, event_type: str = "POINT_IN_TIME", **metadata) -> None:
        record = {
            "namespace": "",
            "time_ms": int(time.time() * 1000),
            "event_type": event_type,
            "key": key,
            "value": value,
            "metadata": {"file": __file__, **metadata},
        }
        self.fh.write(":::MLLOG " + json.dumps(record) + "\n")
        self.fh.flush()

    def line(self, text: str) -> None:
        self.fh.write(text + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def _corpus(torch, count: int, seed: int, language: int = 7):
    """Sequences from a sparse Markov chain (the "language", fixed by its own seed): each token has one likely
    successor, so a masked token can be told from its neighbours most of the time, but not always (the
    task has a ceiling near 0.9). Training and eval sets are different draws of the same language."""
    table = torch.randperm(VOCAB - 1, generator=torch.Generator().manual_seed(language)) + 1  # 0 is [MASK]
    gen = torch.Generator().manual_seed(seed)
    seqs = torch.empty((count, SEQ), dtype=torch.long)
    seqs[:, 0] = torch.randint(1, VOCAB, (count,), generator=gen)
    for t in range(1, SEQ):
        likely = table[seqs[:, t - 1] - 1]
        noise = torch.randint(1, VOCAB, (count,), generator=gen)
        keep = torch.rand(count, generator=gen) < 0.9
        seqs[:, t] = torch.where(keep, likely, noise)
    return seqs


def _mask(torch, seqs, gen):
    mask = torch.rand(seqs.shape, generator=gen) < 0.15
    mask[:, 0] |= ~mask.any(dim=1)  # at least one masked token per sequence
    inputs = seqs.masked_fill(mask, MASK_ID)
    return inputs, mask


def _model(torch):
    nn = torch.nn

    class TinyBert(nn.Module):
        def __init__(self, dim: int = 64):
            super().__init__()
            self.tokens = nn.Embedding(VOCAB, dim)
            self.positions = nn.Embedding(SEQ, dim)
            layer = nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=128, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
            self.head = nn.Linear(dim, VOCAB)

        def forward(self, x):
            pos = torch.arange(x.shape[1]).unsqueeze(0)
            return self.head(self.encoder(self.tokens(x) + self.positions(pos)))

    return TinyBert()


def _log_settings(log: MllogWriter, seed: int, max_steps: int) -> None:
    log.event("submission_benchmark", "bert")
    log.event("submission_org", "pytest-mlperf")
    log.event("submission_division", "open")
    log.event("submission_platform", "1xLocal-CPU (stand-in masked-LM, not the MLPerf BERT)")
    for key, value in (
        ("global_batch_size", BATCH),
        ("gradient_accumulation_steps", 1),
        ("opt_base_learning_rate", LEARNING_RATE),
        ("opt_learning_rate_training_steps", max_steps),
        ("max_sequence_length", SEQ),
        ("seed", seed),
        ("eval_samples", EVAL_SEQS),
    ):
        log.event(key, value)


def _steps(torch, log: MllogWriter, seed: int, target: float, max_steps: int) -> tuple[str, int, float, float]:
    """Initialisation and the training loop: (status, samples seen, last loss, when run_start was logged)."""
    train_seqs = _corpus(torch, 16384, seed=seed)
    eval_seqs = _corpus(torch, EVAL_SEQS, seed=seed + 1000)
    eval_inputs, eval_mask = _mask(torch, eval_seqs, torch.Generator().manual_seed(seed + 2000))
    model = _model(torch)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed + 3000)
    log.event("init_stop", event_type="INTERVAL_END")
    log.event("run_start", event_type="INTERVAL_START")
    run_start, samples, loss_value = time.time(), 0, float("nan")
    log.event("block_start", event_type="INTERVAL_START", first_epoch_num=0)
    for step in range(1, max_steps + 1):
        rows = torch.randint(0, train_seqs.shape[0], (BATCH,), generator=gen)
        inputs, mask = _mask(torch, train_seqs[rows], gen)
        loss = loss_fn(model(inputs)[mask], train_seqs[rows][mask])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        samples += BATCH
        loss_value = float(loss.detach())
        if step % EVAL_EVERY == 0 or step == max_steps:
            with torch.no_grad():
                predicted = model(eval_inputs).argmax(dim=-1)
            accuracy = float((predicted[eval_mask] == eval_seqs[eval_mask]).float().mean())
            log.event("eval_accuracy", accuracy, epoch_num=samples)
            if accuracy >= target:
                return "success", samples, loss_value, run_start
    return "aborted", samples, loss_value, run_start


def train(log_path: Path, target: float, max_steps: int = MAX_STEPS, seed: int = 1) -> None:
    """Train until eval accuracy >= target (run_stop success) or max_steps (run_stop aborted)."""
    try:
        import torch
    except ImportError:
        raise ResultMissing(INSTALL_HINT) from None
    started = time.time()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = MllogWriter(log_path)
    # One intra-op thread: the model's matrices are tiny, and a pool of threads spins waiting on each other. On two
    # idle cores the same trial took 24 s (17 s of CPU) on PyTorch's default two threads and 8 s (7.5 s) on one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        log.event("cache_clear", True)
        log.event("init_start", event_type="INTERVAL_START")
        torch.manual_seed(seed)
        _log_settings(log, seed, max_steps)
        status, samples, loss_value, run_start = _steps(torch, log, seed, target, max_steps)
        log.event("block_stop", event_type="INTERVAL_END", first_epoch_num=0)
        log.event("train_samples", samples)
        raw_train_time = time.time() - run_start
        log.event("run_stop", event_type="INTERVAL_END", status=status)
        summary = {
            "e2e_time": time.time() - started,
            "training_sequences_per_second": samples / raw_train_time,
            "final_loss": loss_value,
            "raw_train_time": raw_train_time,
        }
        log.line(repr(summary))
    finally:
        torch.set_num_threads(threads)
        log.close()


def run_training(case: TrainingCase, folder: Path, max_steps: int = MAX_STEPS) -> Artifacts:
    """One trial: trial_<i> writes result_<i-1>.txt (the published naming) with seed i, as each MLPerf run
    draws a seed of its own."""
    index = int((case.trial or "trial_1").rpartition("_")[2])
    path = folder / f"result_{index - 1}.txt"
    train(path, case.target, max_steps=max_steps, seed=index)
    info = {"model": "stand-in masked-LM (2-layer transformer, generated corpus)", "stand_in": True}
    return Artifacts(path, info=info)
