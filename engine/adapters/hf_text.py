"""Hugging Face text classifiers: AutoModelForSequenceClassification with its tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelwiz.engine.adapters.base import Adapter, Progress, first_line, hf_load, quiet_transformers, resolve_hf_path
from modelwiz.engine.errors import UserError

LENGTH_CHUNK = 4096  # texts tokenized at once when measuring lengths


class HFTextAdapter(Adapter):
    kind = "hf-text"
    library = "transformers"
    pipeline_tag = "text-classification"

    def __init__(
        self,
        model: Any,
        labels: list[str],
        *,
        tokenizer: Any,
        max_length: int,
        source: str,
        arch: str,
        new_params: set[str] | None = None,
    ) -> None:
        super().__init__(model, labels, source=source, arch=arch, new_params=new_params)
        self.tokenizer, self.max_length = tokenizer, int(max_length)

    @classmethod
    def claims(cls, model_id: str, modality: str) -> bool:
        return modality == "text"

    @classmethod
    def for_training(cls, plan: Any, labels: list[str], progress: Progress | None = None) -> HFTextAdapter:
        from transformers import AutoModelForSequenceClassification

        path = resolve_hf_path(plan.model_id, offline=plan.offline, progress=progress)
        tokenizer = _tokenizer(path, trust_remote_code=plan.trust_remote_code)
        model, fresh = hf_load(
            AutoModelForSequenceClassification, path, labels, trust_remote_code=plan.trust_remote_code
        )
        ensure_padding(tokenizer, model)
        return cls(
            model,
            labels,
            tokenizer=tokenizer,
            max_length=plan.max_length,
            source=str(path),
            arch=model.config.model_type,
            new_params=fresh,
        )

    @classmethod
    def from_export(cls, model_dir: Path, meta: dict[str, Any]) -> HFTextAdapter:
        from transformers import AutoModelForSequenceClassification

        quiet_transformers()
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), use_safetensors=True)
        return cls(
            model.eval(),
            meta["labels"],
            tokenizer=_tokenizer(model_dir),
            max_length=int(meta.get("max_length") or 512),
            source=str(model_dir),
            arch=meta.get("arch", ""),
        )

    def collate(self, items: list[Any], *, train: bool) -> dict[str, Any]:
        return dict(
            self.tokenizer(items, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
        )

    def lengths(self, items: list[Any]) -> list[int]:
        out: list[int] = []
        for start in range(0, len(items), LENGTH_CHUNK):  # bounded memory on large splits
            enc = self.tokenizer(list(items[start : start + LENGTH_CHUNK]), truncation=True, max_length=self.max_length)
            out += [len(ids) for ids in enc["input_ids"]]
        return out

    def save_model(self, out_dir: Path) -> None:
        self.model.save_pretrained(str(out_dir))
        self.tokenizer.save_pretrained(str(out_dir))

    def preprocessing(self) -> dict[str, Any]:
        return {"max_length": self.max_length}

    def usage(self, model_dir_name: str) -> str:
        return (
            "```python\nfrom transformers import pipeline\n"
            f'clf = pipeline("text-classification", model="PATH/TO/{model_dir_name}")\n'
            f'print(clf("an example", truncation=True, max_length={self.max_length}))\n```\n'
            f"Texts were truncated to {self.max_length} tokens in training.\n"
        )


def ensure_padding(tokenizer: Any, model: Any) -> None:
    """Give a tokenizer and classifier without a padding token one (GPT-2, Llama, Mistral, Qwen and
    most decoder-only models ship none: batching then fails, and their classifier, which reads the
    last token that is not padding, refuses batches larger than 1). The tokenizer pads with its
    end-of-text token (else its unknown, separator or start token, the usual choice; the attention
    mask hides it either way); a tokenizer with none of them gets a new [PAD] token, its embedding
    row added to the model."""
    if tokenizer.pad_token is None:
        for name in ("eos_token", "unk_token", "sep_token", "bos_token"):
            token = getattr(tokenizer, name, None)
            if token is not None:
                tokenizer.pad_token = token
                break
        else:
            tokenizer.add_special_tokens({"pad_token": "[PAD]"})
            model.resize_token_embeddings(len(tokenizer))
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id


def _tokenizer(path: Path, *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    quiet_transformers()
    try:
        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"cannot load a tokenizer from {path} ({first_line(exc)}); the folder needs "
            "tokenizer files (tokenizer.json or vocab.txt)"
        ) from None
