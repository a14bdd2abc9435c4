"""Transferability estimators and the ranking, timed on this machine (not tests: figures).

1. LogME and H-score (modelwiz.engine.transfer) on 10,000 x 768 features with 10 classes (the
   size of a 2,000-example probe is far below it), and on 500 x 2,048 (fewer samples than
   dimensions), each as seconds and as a ratio to one float64 Gram matrix F^T F of the same
   features measured in the same run (the unavoidable part of either estimator).
2. `recommend` with no probe over the whole catalog under constraints, after imports: the
   ranking alone (`rank`) and the pipeline (`workflow.recommend` with the hardware already read:
   data check + gathering every source + ranking), for the shipped text demo and a small image
   folder (every torchvision weights entry). The budget is 0.5 s.

    .venv/bin/python bench/transfer.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def estimators(repeat: int) -> None:
    from modelwiz.engine.transfer import h_score, logme

    rng = np.random.default_rng(0)
    for n, d, k in ((10_000, 768, 10), (500, 2048, 10)):
        y = rng.integers(0, k, n)
        f = rng.normal(size=(n, d)).astype(np.float32)
        f[:, :k] += 2.0 * np.eye(k, dtype=np.float32)[y]
        f64 = f.astype(np.float64)
        base = best_of(lambda f64=f64: f64.T @ f64 if f64.shape[0] >= f64.shape[1] else f64 @ f64.T, repeat)
        t_logme = best_of(lambda f=f, y=y: logme(f, y), repeat)
        t_h = best_of(lambda f=f, y=y: h_score(f, y), repeat)
        print(
            f"{n:>6} x {d:<5} {k} classes   LogME {t_logme:6.2f} s ({t_logme / base:4.1f}x Gram)   "
            f"H-score {t_h:6.2f} s ({t_h / base:4.1f}x Gram)   Gram {base:.2f} s   "
            f"LogME {logme(f, y):+.3f}, shuffled labels {logme(f, rng.permutation(y)):+.3f}"
        )


def _image_folder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, colour in enumerate(((200, 40, 40), (40, 180, 40), (40, 60, 200))):
        d = root / f"class{c}"
        d.mkdir(parents=True)
        for i in range(20):
            img = np.clip(rng.normal(0, 30, (32, 32, 3)) + np.array(colour), 0, 255).astype("uint8")
            Image.fromarray(img).save(d / f"{i}.png")
    return root


def ranking(repeat: int) -> None:
    from modelwiz.engine.config import config_from_dict
    from modelwiz.engine.demo import demo_config
    from modelwiz.engine.hardware import detect
    from modelwiz.engine.recommend import gather_candidates, rank
    from modelwiz.engine.workflow import check_data, recommend

    hardware = detect()
    with tempfile.TemporaryDirectory() as tmp:
        image_cfg = config_from_dict(
            {
                "task": {"modality": "image", "train": str(_image_folder(Path(tmp) / "imgs"))},
                "constraints": {"max_params_m": 150, "licenses": ["apache-2.0", "mit", "bsd-3-clause"]},
            }
        )
        text_cfg = copy.deepcopy(demo_config())
        text_cfg.constraints.max_params_m = 150
        text_cfg.constraints.licenses = ["apache-2.0", "mit"]
        text_cfg.constraints.offline = False  # the demo is offline; rank the whole catalog
        for label, cfg in (("text (demo)", text_cfg), ("image (60 images)", image_cfg)):
            data = check_data(cfg)
            s = data.summary
            cands = gather_candidates(cfg.task.modality)  # warms the torchvision registry cache
            t_rank = best_of(
                lambda cfg=cfg, s=s, cands=cands: rank(
                    cfg, hardware, train_size=s.train_size, num_classes=s.num_classes, candidates=cands
                ),
                repeat,
            )
            t_all = best_of(lambda cfg=cfg: recommend(cfg, hardware=hardware), repeat)
            n = len(recommend(cfg, hardware=hardware).ranked)
            print(
                f"{label:<18} {len(cands):>4} candidates, {n:>4} ranked   rank {t_rank * 1000:6.1f} ms   "
                f"recommend {t_all * 1000:6.1f} ms   ({t_all / 0.5:.0%} of the 0.5 s budget)"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print("estimators (best of", args.repeat, "runs)")
    estimators(args.repeat)
    print("recommend without a probe, after imports (best of", args.repeat, "runs)")
    ranking(args.repeat)


if __name__ == "__main__":
    main()
