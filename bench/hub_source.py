"""The Hugging Face Hub source (engine/sources/hubsearch.py) timed on this machine, against the
loopback fake Hub of the tests (tests/fakehub.py) serving 40 small text models: a cold fetch (the
lists and the configs), a search answered from the in-process cache and from the file cache, and
`workflow.recommend` of the demo task (offline = false) with the Hub's list cached (the budget of
`recommend` without a probe is 0.5 s after imports). Not a test: figures.

    .venv/bin/python bench/hub_source.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mw-hub-bench-"))
    os.environ.update(
        MODELWIZ_HOME=str(tmp / "home"),
        MODELWIZ_CACHE=str(tmp / "cache"),
        HF_HOME=str(tmp / "hf"),
        NO_PROXY="127.0.0.1,localhost",
    )
    os.environ.pop("HF_HUB_OFFLINE", None)

    import numpy as np
    from fakehub import FakeHub
    from safetensors.numpy import save_file

    from modelwiz.engine.demo import demo_config
    from modelwiz.engine.hardware import detect
    from modelwiz.engine.recommend import gather_candidates
    from modelwiz.engine.sources import hubsearch
    from modelwiz.engine.workflow import check_data, recommend

    config = {
        "model_type": "bert",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 1000,
        "max_position_embeddings": 512,
    }
    tags = hubsearch.PIPELINE_TAGS["text"]
    with FakeHub() as hub:
        for i in range(40):
            folder = tmp / "repos" / f"m{i}"
            folder.mkdir(parents=True)
            (folder / "config.json").write_text(json.dumps(config))
            save_file({"w": np.zeros(1000 + i, dtype=np.float32)}, str(folder / "model.safetensors"))
            hub.add_repo(f"org/m{i}", folder, pipeline_tag=tags[i % len(tags)], downloads=i)
        os.environ["HF_ENDPOINT"] = hub.endpoint
        t0 = time.perf_counter()
        found = hubsearch.search("text")
        cold = time.perf_counter() - t0
        print(f"cold fetch             {cold * 1000:7.1f} ms   {len(hub.requests)} requests   {found.note}")
        memo = best_of(lambda: hubsearch.search("text"), args.repeat)

        def from_file() -> None:
            hubsearch.clear_memo()
            hubsearch.search("text")

        disk = best_of(from_file, args.repeat)
        print(f"cached, in process     {memo * 1000:7.2f} ms")
        print(f"cached, file           {disk * 1000:7.2f} ms")
        without = best_of(lambda: gather_candidates("text", include_hub=False), args.repeat)
        with_hub = best_of(lambda: gather_candidates("text"), args.repeat)
        print(
            f"gather_candidates      {without * 1000:7.1f} ms without the Hub, {with_hub * 1000:.1f} ms with it (cached)"
        )
        cfg = demo_config()
        cfg.constraints.offline = False
        hardware = detect()
        data = check_data(cfg)
        t_rec = best_of(lambda: recommend(cfg, data=data, hardware=hardware), max(1, args.repeat // 2))
        n = len(recommend(cfg, data=data, hardware=hardware).ranked)
        print(f"recommend (demo)       {t_rec * 1000:7.1f} ms   {n} ranked   ({t_rec / 0.5:.0%} of the 0.5 s budget)")


if __name__ == "__main__":
    main()
