"""torchvision classifiers whose head is not a last Linear layer, or whose training forward is
not a tensor: each trains (a forward and backward in training mode gives logits for the new
classes) and its export loads the way `predict` loads it."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("name", "px"), [("googlenet", 96), ("inception_v3", 299), ("squeezenet1_1", 96)])
def test_head_replaced_trains_and_export_loads(tmp_path, name, px):
    import torch
    from safetensors.torch import save_file
    from torchvision import models as tvm

    from modelwiz.engine.adapters.torchvision import TorchvisionAdapter, drop_aux_heads, replace_head

    extra = {"init_weights": False} if name != "squeezenet1_1" else {}
    model = tvm.get_model(name, weights=None, **extra)
    drop_aux_heads(model)
    head = replace_head(model, 3)
    fresh = [n for n, _ in model.named_parameters() if n.startswith(head + ".")]
    assert fresh, head
    model.train()
    out = model(torch.randn(2, 3, px, px))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3)
    out.sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if n in fresh)

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "model.safetensors"))
    loaded = TorchvisionAdapter.from_export(tmp_path, {"arch": name, "labels": ["a", "b", "c"], "image_size": px})
    with torch.no_grad():
        model.eval()
        assert torch.allclose(loaded.model(torch.ones(1, 3, px, px)), model(torch.ones(1, 3, px, px)), atol=1e-5)
