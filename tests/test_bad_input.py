"""Bad input corpus: each case exits 2 with one clear line on stderr and no traceback, before any
model is loaded (these run in seconds because nothing heavy is imported)."""

from __future__ import annotations

import csv
import json
import struct
import zlib
from pathlib import Path

import pytest
from conftest import run_cli, write_image_data, write_text_data


def _cfg(tmp: Path, body: str) -> Path:
    p = tmp / "c.toml"
    p.write_text(body)
    return p


def _csv(tmp: Path, rows: list[list[str]], name: str = "d.csv") -> Path:
    p = tmp / name
    with p.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return p


def case_missing_file(tmp):
    return _cfg(tmp, '[task]\ntrain = "nope.csv"\n'), "does not exist"


def case_empty_file(tmp):
    (tmp / "d.csv").write_text("")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "is empty"


def case_header_only(tmp):
    (tmp / "d.csv").write_text("text,label\n")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "no examples"


def case_unparseable_csv(tmp):
    (tmp / "d.csv").write_text('text,label\n"unclosed quote,a\nfine,b\n')
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "cannot parse as CSV"


def case_binary_file(tmp):
    (tmp / "d.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00binary")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "binary"


def case_not_utf8(tmp):
    (tmp / "d.csv").write_bytes("text,label\ncaf\xe9 au lait,a\nthe tea,b\n".encode("latin-1"))
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "UTF-8"


def case_bad_jsonl(tmp):
    (tmp / "d.jsonl").write_text('{"text": "a", "label": "x"}\n{not json}\n')
    return _cfg(tmp, '[task]\ntrain = "d.jsonl"\n'), "d.jsonl:2"


def case_no_label_column(tmp):
    _csv(tmp, [["text", "other"]] + [[f"sentence number {i} is unique here", f"v{i}"] for i in range(30)])
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "label column"


def case_named_column_missing(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\nlabel_column = "category"\n'), "'category' is not a column"


def case_one_class(tmp):
    _csv(tmp, [["text", "label"]] + [[f"some text {i}", "only"] for i in range(20)])
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "only one class"


def case_class_too_small(tmp):
    _csv(tmp, [["text", "label"]] + [[f"text {i}", "a" if i < 10 else "b"] for i in range(11)])
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "class 'b' has only 1"


def case_wrong_type(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[train]\nepochs = "three"\n'), "epochs must be an integer"


def case_out_of_range(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\nvalidation = 1.5\n'), "validation must be at most"


def case_unknown_key(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[train]\nepoch = 3\n'), "did you mean 'epochs'"


def case_bad_choice(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[train]\nstrategy = "everything"\n'), "strategy must be one of"


def case_invalid_toml(tmp):
    return _cfg(tmp, '[task\ntrain = "d.csv"\n'), "invalid TOML"


def case_config_missing(tmp):
    return tmp / "absent.toml", "does not exist"


def case_unknown_model_folder(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[model]\nid = "./no-such-model"\n'), "not a model folder"


def case_corrupt_image(tmp):
    write_image_data(tmp / "imgs", n_per_class=3, size=16)
    (tmp / "imgs" / "red_h" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    return _cfg(tmp, '[task]\nmodality = "image"\ntrain = "imgs"\n'), "corrupt or unreadable image"


def case_image_folder_without_classes(tmp):
    (tmp / "imgs").mkdir()
    return _cfg(tmp, '[task]\nmodality = "image"\ntrain = "imgs"\n'), "no class sub-folders"


def case_offline_nothing_available(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(
        tmp, '[task]\ntrain = "d.csv"\n[constraints]\noffline = true\nlicenses = ["no-such-license"]\n'
    ), "no candidate model"


def case_cuda_requested_without_gpu(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[constraints]\ndevice = "gpu"\n'), "device must be"


def case_cuda_index_this_machine_lacks(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[constraints]\ndevice = "cuda:99"\n'), 'device = "cuda:99" but'


def case_unknown_best_metric(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[train]\nmetric = "f1"\n'), "[train] metric must be one of"


def _bakeoff(tmp, line: str, extra: str = ""):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, f'[task]\ntrain = "d.csv"\n{extra}[train]\n{line}\n')


def case_bakeoff_of_one(tmp):
    return _bakeoff(tmp, "bakeoff = 1"), "[train] bakeoff = 1 is a race of one; set it to 2 or more"


def case_bakeoff_negative(tmp):
    return _bakeoff(tmp, "bakeoff = -2"), "[train] bakeoff must be at least 0"


def case_bakeoff_not_an_integer(tmp):
    return _bakeoff(tmp, 'bakeoff = "three"'), "[train] bakeoff must be an integer"


def case_bakeoff_fraction(tmp):
    return _bakeoff(tmp, "bakeoff = 2.5"), "[train] bakeoff must be an integer"


def case_bakeoff_share_zero(tmp):
    return _bakeoff(tmp, "bakeoff = 2\nbakeoff_share = 0"), "[train] bakeoff_share must be greater than 0"


def case_bakeoff_with_a_model_id(tmp):
    return _bakeoff(tmp, "bakeoff = 2", '[model]\nid = "org/some-model"\n'), "remove [model] id, or set bakeoff = 0"


def case_bakeoff_with_several_processes(tmp):
    return _bakeoff(tmp, "bakeoff = 2\nnproc = 2"), "trains its contenders in one process"


# -- data files: delimiters, encodings, shapes -------------------------------------------------------


def _text_rows(n: int = 20) -> list[tuple[str, str]]:
    """Texts with commas in them, two classes."""
    return [(f"note {i}, about the weather, it rains", "wet" if i % 2 else "dry") for i in range(n)]


def case_semicolon_csv_one_class(tmp):
    # read as semicolon-separated (not "found 1 column"): then the labels are what is wrong
    (tmp / "d.csv").write_text("text;label\n" + "".join(f"{t};only\n" for t, _ in _text_rows()))
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "only one class"


def case_tab_separated_csv_bad_row(tmp):
    rows = [f"{t}\t{y}" for t, y in _text_rows()]
    rows[2] += "\textra"
    (tmp / "d.csv").write_text("text\tlabel\n" + "\n".join(rows) + "\n")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "row 4 has 3 fields but the header has 2"


def case_semicolon_csv_named_column_missing(tmp):
    (tmp / "d.csv").write_text("review;label\n" + "".join(f"{t};{y}\n" for t, y in _text_rows()))
    return _cfg(tmp, '[task]\ntrain = "d.csv"\ntext_column = "text"\n'), "columns are: review, label"


def case_single_column(tmp):
    (tmp / "d.csv").write_text("text\n" + "".join(f"sentence {i}\n" for i in range(20)))
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "found 1 column"


def case_duplicate_header(tmp):
    _csv(tmp, [["text", "text"]] + [[f"a {i}", "b"] for i in range(10)])
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "column name 'text' appears twice"


def case_utf16_csv(tmp):
    (tmp / "d.csv").write_bytes("text,label\nthe tea,a\nthe coffee,b\n".encode("utf-16"))
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "is UTF-16 text"


def case_unsupported_suffix(tmp):
    (tmp / "d.xlsx").write_bytes(b"PK\x03\x04 spreadsheet")
    return _cfg(tmp, '[task]\ntrain = "d.xlsx"\n'), "unsupported file type '.xlsx'"


def case_jsonl_array_line(tmp):
    (tmp / "d.jsonl").write_text('{"text": "a", "label": "x"}\n["text", "label"]\n')
    return _cfg(tmp, '[task]\ntrain = "d.jsonl"\n'), "expected a JSON object per line, got list"


def case_all_labels_empty(tmp):
    _csv(tmp, [["text", "label"]] + [[f"text {i}", ""] for i in range(10)])
    return _cfg(tmp, '[task]\ntrain = "d.csv"\nlabel_column = "label"\n'), "every row has an empty"


def case_text_data_is_a_folder(tmp):
    (tmp / "data").mkdir()
    return _cfg(tmp, '[task]\ntrain = "data"\n'), "is a folder"


def case_validation_label_unknown(tmp):
    write_text_data(tmp / "d.csv")
    _csv(tmp, [["text", "label"], ["a goal in the match", "sports"], ["the rain again", "gardening"]], "v.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\nvalidation = "v.csv"\n'), "label 'gardening' does not occur"


def case_label_column_is_an_id(tmp):
    _csv(tmp, [["text", "label"]] + [[f"text number {i}", f"id{i}"] for i in range(120)])
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n'), "does not look like a class column"


def case_text_and_label_same_column(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\ntext_column = "label"\nlabel_column = "label"\n'), "are both"


# -- image folders ---------------------------------------------------------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels in a few dozen bytes (a decompression bomb
    without the bytes that would decode to gigabytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def case_image_decompression_bomb(tmp):
    write_image_data(tmp / "imgs", n_per_class=3, size=16)
    (tmp / "imgs" / "red_h" / "bomb.png").write_bytes(_png_header(40_000, 40_000))
    return _cfg(tmp, '[task]\nmodality = "image"\ntrain = "imgs"\n'), "bomb.png declares more pixels"


def case_image_over_pixel_bound(tmp):
    # above the bound but below twice it: PIL only warns; still refused, with the size
    write_image_data(tmp / "imgs", n_per_class=3, size=16)
    (tmp / "imgs" / "green_v" / "huge.png").write_bytes(_png_header(10_000, 10_000))
    return _cfg(tmp, '[task]\nmodality = "image"\ntrain = "imgs"\n'), "is 10000x10000 pixels"


def case_image_bomb_in_validation_folder(tmp):
    write_image_data(tmp / "imgs", n_per_class=3, size=16)
    write_image_data(tmp / "val", n_per_class=1, size=16)
    (tmp / "val" / "blue_d" / "bomb.png").write_bytes(_png_header(65_000, 65_000))
    return _cfg(tmp, '[task]\nmodality = "image"\ntrain = "imgs"\nvalidation = "val"\n'), "decompression bomb"


def case_image_zero_bytes(tmp):
    write_image_data(tmp / "imgs", n_per_class=3, size=16)
    (tmp / "imgs" / "red_h" / "empty.jpg").write_bytes(b"")
    return _cfg(tmp, '[task]\nmodality = "image"\ntrain = "imgs"\n'), "corrupt or unreadable image"


def case_image_text_named_jpg(tmp):
    write_image_data(tmp / "imgs", n_per_class=3, size=16)
    (tmp / "imgs" / "blue_d" / "notes.jpg").write_text("this is a shopping list, not a photo\n")
    return _cfg(tmp, '[task]\nmodality = "image"\ntrain = "imgs"\n'), "corrupt or unreadable image"


def case_image_truncated_png(tmp):
    write_image_data(tmp / "imgs", n_per_class=3, size=16)
    good = (tmp / "imgs" / "red_h" / "0.png").read_bytes()
    (tmp / "imgs" / "red_h" / "cut.png").write_bytes(good[: len(good) // 2])
    return _cfg(tmp, '[task]\nmodality = "image"\ntrain = "imgs"\n'), "corrupt or unreadable image"


def case_image_root_is_a_file(tmp):
    (tmp / "imgs.zip").write_bytes(b"PK\x03\x04")
    return _cfg(tmp, '[task]\nmodality = "image"\ntrain = "imgs.zip"\n'), "is a file"


def case_image_folder_missing(tmp):
    return _cfg(tmp, '[task]\nmodality = "image"\ntrain = "nowhere"\n'), "does not exist"


def case_image_classes_without_images(tmp):
    for name in ("cat", "dog"):
        (tmp / "imgs" / name).mkdir(parents=True)
        (tmp / "imgs" / name / "readme.txt").write_text("no images here")
    return _cfg(tmp, '[task]\nmodality = "image"\ntrain = "imgs"\n'), "no images"


def case_image_one_class(tmp):
    write_image_data(tmp / "src", n_per_class=3, size=16)
    (tmp / "imgs").mkdir()
    (tmp / "src" / "red_h").rename(tmp / "imgs" / "red_h")
    return _cfg(tmp, '[task]\nmodality = "image"\ntrain = "imgs"\n'), "only one class ('red_h')"


def case_image_class_with_one_image(tmp):
    write_image_data(tmp / "imgs", n_per_class=3, size=16)
    for extra in ("1.png", "2.png"):
        (tmp / "imgs" / "blue_d" / extra).unlink()
    return _cfg(tmp, '[task]\nmodality = "image"\ntrain = "imgs"\n'), "class 'blue_d' has only 1"


# -- configs ---------------------------------------------------------------------------------------


def case_trust_remote_code_not_bool(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[model]\ntrust_remote_code = "yes"\n'), "must be true or false"


def case_group_by_length_not_auto_or_bool(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[train]\ngroup_by_length = "maybe"\n'), 'must be "auto", true or false'


def case_augment_not_auto_or_bool(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[train]\naugment = 1\n'), 'augment must be "auto", true or false'


def case_model_key_misspelt(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[model]\ntrust_remote = true\n'), "did you mean 'trust_remote_code'"


def case_model_id_not_a_string(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[model]\nid = 5\n'), "[model] id must be a string"


def case_unknown_table(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[modle]\nid = "x"\n'), "did you mean [model]"


def case_licenses_not_a_list(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[constraints]\nlicenses = "mit"\n'), "must be a list of strings"


def case_unknown_modality(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\nmodality = "audio"\ntrain = "d.csv"\n'), "modality must be one of"


def case_config_not_utf8(tmp):
    p = tmp / "c.toml"
    p.write_bytes('[task]\ntrain = "caf\xe9.csv"\n'.encode("latin-1"))
    return p, "not a UTF-8 text file"


def case_config_is_a_folder(tmp):
    (tmp / "conf.toml").mkdir()
    return tmp / "conf.toml", "is a folder"


def case_train_missing(tmp):
    return _cfg(tmp, "[train]\nepochs = 1\n"), "[task] train is missing"


# -- model folders: everything a run would trip over, refused before the run exists ------------------


def _safetensors(tensors: dict[str, tuple[str, list[int]]], *, header: bytes | None = None, cut: int = 0) -> bytes:
    """A safetensors file written by hand (zero-filled tensors), optionally with a given header
    or with `cut` bytes missing from the end."""
    sizes = {"F32": 4, "F16": 2, "I64": 8}
    meta, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        meta[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = header if header is not None else json.dumps(meta).encode()
    data = struct.pack("<Q", len(raw)) + raw + b"\0" * offset
    return data[: len(data) - cut] if cut else data


TINY_WEIGHTS = {"embeddings.weight": ("F32", [8, 4]), "classifier.weight": ("F32", [2, 4])}


def _model(
    tmp: Path, *, config: object = None, weights: bytes | None = None, tokenizer: bool = True, name: str = "m"
) -> Path:
    """A model folder as save_pretrained writes it (config, safetensors, tokenizer files), built
    without torch; `config`/`weights` replace the good ones."""
    folder = tmp / name
    folder.mkdir()
    cfg = config if config is not None else {"model_type": "bert", "hidden_size": 4, "num_hidden_layers": 1}
    (folder / "config.json").write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    (folder / "model.safetensors").write_bytes(weights if weights is not None else _safetensors(TINY_WEIGHTS))
    if tokenizer:
        (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n")
        (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer"}))
    return folder


def _with_model(tmp: Path, extra: str = "") -> Path:
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, f'[task]\ntrain = "d.csv"\n[model]\nid = "./m"\n{extra}')


def case_model_pickle_only(tmp):
    folder = _model(tmp)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02cos\nsystem\n(S'echo pwned'\ntR.")
    return _with_model(tmp), "safe_serialization=True"


def case_model_safetensors_garbage(tmp):
    _model(tmp, weights=b"\x00\x01this is not a safetensors file at all" * 4)
    return _with_model(tmp), "is not a valid safetensors file"


def case_model_safetensors_header_too_long(tmp):
    _model(tmp, weights=struct.pack("<Q", 10**12) + b"{}")
    return _with_model(tmp), "header length 1000000000000 does not fit"


def case_model_safetensors_header_not_json(tmp):
    _model(tmp, weights=_safetensors(TINY_WEIGHTS, header=b"{not json at all"))
    return _with_model(tmp), "header is not valid JSON"


def case_model_safetensors_truncated(tmp):
    _model(tmp, weights=_safetensors(TINY_WEIGHTS, cut=40))
    return _with_model(tmp), "lies outside the file"


def case_model_safetensors_wrong_tensor_size(tmp):
    good = json.loads(_safetensors(TINY_WEIGHTS)[8:].split(b"\0")[0])
    good["classifier.weight"]["shape"] = [3, 4]  # 48 bytes, but its offsets hold 32
    _model(tmp, weights=_safetensors(TINY_WEIGHTS, header=json.dumps(good).encode()))
    return _with_model(tmp), "does not match its 32 bytes"


def case_model_safetensors_empty(tmp):
    _model(tmp, weights=b"")
    return _with_model(tmp), "too short for a safetensors header"


def case_model_safetensors_no_tensors(tmp):
    _model(tmp, weights=_safetensors({}, header=b'{"__metadata__": {"format": "pt"}}'))
    return _with_model(tmp), "holds no tensors"


def case_model_config_not_json(tmp):
    _model(tmp, config='{"model_type": "bert",')
    return _with_model(tmp), "config.json is unreadable (not valid JSON)"


def case_model_config_without_model_type(tmp):
    _model(tmp, config={"hidden_size": 4})
    return _with_model(tmp), "names no model_type"


def case_model_config_not_an_object(tmp):
    _model(tmp, config="[1, 2, 3]")
    return _with_model(tmp), "config.json is not a JSON object"


def case_model_custom_code(tmp):
    folder = _model(tmp, config={"model_type": "evil", "auto_map": {"AutoModel": "modeling_evil.EvilModel"}})
    (folder / "modeling_evil.py").write_text("import os\nos.system('touch PWNED')\n")
    return _with_model(tmp), "declares custom code (auto_map)"


def case_model_custom_tokenizer_code(tmp):
    folder = _model(tmp)
    (folder / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": ["tok.Evil", None]}}))
    return _with_model(tmp), "tokenizer_config.json declares custom code"


def case_model_without_tokenizer(tmp):
    _model(tmp, tokenizer=False)
    return _with_model(tmp), "has no tokenizer files"


def case_model_index_names_missing_shard(tmp):
    folder = _model(tmp)
    (folder / "model.safetensors").unlink()
    index = {"weight_map": {"embeddings.weight": "model-00001-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return _with_model(tmp), "lacks the weight shard model-00001-of-00002.safetensors"


def case_model_index_escapes_folder(tmp):
    folder = _model(tmp)
    (folder / "model.safetensors").rename(tmp / "outside.safetensors")
    index = {"weight_map": {"embeddings.weight": "../outside.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return _with_model(tmp), "not a .safetensors file in the folder"


def case_model_index_not_json(tmp):
    folder = _model(tmp)
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors.index.json").write_text("weight_map: everything")
    return _with_model(tmp), "is not a valid safetensors index"


def case_model_image_folder_for_text(tmp):
    _model(tmp, config={"model_type": "vit", "image_size": 32, "hidden_size": 4})
    return _with_model(tmp), "is a image model but [task] modality is text"


def case_model_folder_without_weights(tmp):
    (tmp / "m").mkdir()
    (tmp / "m" / "config.json").write_text('{"model_type": "bert"}')
    return _with_model(tmp), "is not a model folder"


# -- Hub ids (tests run with HF_HUB_OFFLINE=1 and an empty cache) -----------------------------------


def case_hub_id_with_spaces(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[model]\nid = "my org/bert base"\n'), "not a valid Hugging Face model id"


def case_hub_id_too_many_slashes(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[model]\nid = "org/name/extra"\n'), "more than one '/'"


def case_hub_id_is_a_url(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(
        tmp, '[task]\ntrain = "d.csv"\n[model]\nid = "https://huggingface.co/google/bert_uncased_L-2_H-128_A-2"\n'
    ), "is a URL; give the Hub id itself (org/name, e.g. google/bert_uncased_L-2_H-128_A-2)"


def case_hub_id_double_dash(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(tmp, '[task]\ntrain = "d.csv"\n[model]\nid = "org/--name"\n'), "not a valid Hugging Face model id"


def case_hub_id_not_cached_while_offline(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(
        tmp, '[task]\ntrain = "d.csv"\n[model]\nid = "tiny-org/never-downloaded"\n'
    ), "not in the Hugging Face cache, and HF_HUB_OFFLINE is set"


def case_hub_id_not_cached_offline_config(tmp):
    write_text_data(tmp / "d.csv")
    return _cfg(
        tmp, '[task]\ntrain = "d.csv"\n[constraints]\noffline = true\n[model]\nid = "tiny-org/never-downloaded"\n'
    ), "[constraints] offline = true"


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_input_exits_2_with_one_line(tmp_path, case):
    config, expected = case(tmp_path)
    assert_refused(tmp_path, config, expected)


def test_cuda_without_a_gpu_is_one_line_about_the_gpu(tmp_path):
    """Not "no candidate fits in 0.0 GB": the device itself is what is wrong."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    write_text_data(tmp_path / "d.csv")
    config = _cfg(tmp_path, '[task]\ntrain = "d.csv"\n[constraints]\ndevice = "cuda"\n')
    assert_refused(tmp_path, config, 'device = "cuda" but no CUDA GPU was detected')


def test_bakeoff_with_fewer_than_two_models_that_fit(tmp_path):
    """One model on disk, offline: nothing to race against; refused before the run exists."""
    write_text_data(tmp_path / "d.csv")
    (tmp_path / "models").mkdir()
    _model(tmp_path / "models")
    config = _cfg(
        tmp_path,
        '[task]\ntrain = "d.csv"\n[constraints]\noffline = true\nmax_params_m = 0.001\n[train]\nbakeoff = 3\n',
    )
    env = {"MODELWIZ_MODEL_PATH": str(tmp_path / "models")}
    assert_refused(tmp_path, config, "[train] bakeoff = 3 needs at least 2 candidate models that fit", env=env)


# -- Hub ids the (fake) Hub refuses: asked before the run, no weights downloaded --------------------


@pytest.fixture(scope="module")
def fake_hub(tmp_path_factory):
    from fakehub import FakeHub

    root = tmp_path_factory.mktemp("hub-repos")
    good = _model(root, name="good")
    bin_only = root / "bin-only"
    bin_only.mkdir()
    (bin_only / "config.json").write_text('{"model_type": "bert"}')
    (bin_only / "pytorch_model.bin").write_bytes(b"pickled weights" * 10)
    custom = _model(root, name="custom", config={"model_type": "evil", "auto_map": {"AutoModel": "m.Evil"}})
    untyped = _model(root, name="untyped", config={"hidden_size": 4})
    with FakeHub() as hub:
        hub.add_repo("tiny-org/good", good)
        hub.add_repo("tiny-org/gated", good, gated=True)
        hub.add_repo("tiny-org/bin-only", bin_only)
        hub.add_repo("tiny-org/custom-code", custom)
        hub.add_repo("tiny-org/untyped", untyped)
        yield hub


def _online(hub) -> dict[str, str]:
    return {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub.endpoint, "NO_PROXY": "127.0.0.1,localhost"}


HUB_CASES = {
    "unknown": ("tiny-org/missing", "no model 'tiny-org/missing' on the Hugging Face Hub"),
    "pickle-only": ("tiny-org/bin-only", "has no safetensors weights"),
    "gated-without-token": ("tiny-org/gated", "is gated and needs a Hugging Face token"),
    "custom-code": ("tiny-org/custom-code", "declares custom code (auto_map)"),
    "no-model-type": ("tiny-org/untyped", "names no model_type"),
}


@pytest.mark.parametrize("model_id, expected", list(HUB_CASES.values()), ids=list(HUB_CASES))
def test_hub_model_refused_before_the_run(tmp_path, fake_hub, model_id, expected):
    write_text_data(tmp_path / "d.csv")
    config = _cfg(tmp_path, f'[task]\ntrain = "d.csv"\n[model]\nid = "{model_id}"\n')
    fake_hub.clear_requests()
    assert_refused(tmp_path, config, expected, env=_online(fake_hub))
    assert not [r.path for r in fake_hub.requests if r.path.endswith((".safetensors", ".bin"))]


def test_hub_model_that_passes_is_checked_without_downloading_weights(tmp_path, fake_hub):
    write_text_data(tmp_path / "d.csv")
    config = _cfg(tmp_path, '[task]\ntrain = "d.csv"\n[model]\nid = "tiny-org/good"\n')
    fake_hub.clear_requests()
    proc = run_cli("recommend", str(config), "--json", env=_online(fake_hub), cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["models"][0]["id"] == "tiny-org/good"
    fetched = [r.path for r in fake_hub.requests if "/resolve/" in r.path]
    assert fetched and all(p.endswith("/config.json") for p in fetched), fetched


# -- what must keep working: the checks refuse the bad, not the unusual ------------------------------


@pytest.mark.parametrize(
    "name, body, columns",
    [
        ("semicolons.csv", "text;label\n" + "".join(f"{t};{y}\n" for t, y in _text_rows()), ("text", "label")),
        ("tabs.csv", "label\ttext\n" + "".join(f"{y}\t{t}; more\n" for t, y in _text_rows()), ("text", "label")),
        ("pipes.csv", "text|label\n" + "".join(f"{t}|{y}\n" for t, y in _text_rows()), ("text", "label")),
        # commas separate, although every text has semicolons (and quoted commas)
        ("commas.csv", "text,label\n" + "".join(f'"{t}; x",{y}\n' for t, y in _text_rows()), ("text", "label")),
        ("commas.tsv", "text,label\n" + "".join(f'"{t}",{y}\n' for t, y in _text_rows()), ("text", "label")),
    ],
)
def test_delimiter_is_sniffed(tmp_path, name, body, columns):
    (tmp_path / name).write_text(body)
    config = _cfg(tmp_path, f'[task]\ntrain = "{name}"\n')
    proc = run_cli("recommend", str(config), "--json", "--top", "1", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)["data"]
    assert (data["text_column"], data["label_column"]) == columns
    assert data["rows"] == 20 and data["num_classes"] == 2
    assert all("," in row["text"] for row in data["preview"])


def test_sniffing_a_large_file_uses_its_first_64_kib():
    from modelwiz.engine.data import sniff_delimiter

    text = "text;label\n" + "".join(f"row {i}, with a comma;{'ab'[i % 2]}\n" for i in range(20_000))
    assert len(text) > 64 * 1024
    assert sniff_delimiter(text, ",") == ";"
    assert sniff_delimiter("just one column\nof text\n", ",") == ","  # nothing fits: the suffix's


def test_predict_refuses_a_bomb_image_before_decoding(tmp_path):
    """`modelwiz predict` reads images through the adapters' load_image: the same bound."""
    from modelwiz.engine.adapters.base import load_image
    from modelwiz.engine.errors import UserError

    for side, expected in ((40_000, "declares more pixels"), (10_000, "is 10000x10000 pixels")):
        bomb = tmp_path / f"bomb{side}.png"
        bomb.write_bytes(_png_header(side, side))
        with pytest.raises(UserError, match=expected):
            load_image(str(bomb))


def test_a_valid_model_folder_passes_the_check(tmp_path):
    """The model cases above differ from this folder in one thing each."""
    write_text_data(tmp_path / "d.csv")
    _model(tmp_path)
    proc = run_cli("recommend", str(_with_model(tmp_path)), "--json", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["models"][0]["path"] == str(tmp_path / "m")


def assert_refused(tmp_path: Path, config: Path, expected: str, env: dict[str, str] | None = None) -> None:
    proc = run_cli(
        "--batch", str(config), "--json", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path, timeout=120, env=env
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert expected in lines[0], lines[0]
    assert proc.stdout.strip() == "" or all(ln.startswith("{") for ln in proc.stdout.splitlines())
    # refused before any run (and so any model) was started
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--bogus"], "unrecognized arguments"),
        (["predict"], "required"),
        (["attach", "no-such-run"], "no run 'no-such-run'"),
        (["cancel", "no-such-run"], "no run 'no-such-run'"),
        (["resume", "no-such-run"], "no run 'no-such-run'"),
        (["recommend", "missing.toml"], "does not exist"),
        (["recommend", "x.toml", "--top", "0"], "--top must be at least 1"),
    ],
)
def test_usage_errors(tmp_path, argv, expected):
    proc = run_cli(*argv, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and expected in lines[0], proc.stderr
