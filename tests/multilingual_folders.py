"""Tiny random encoders that are not BERT-like, for tests/test_multilingual_encoders.py and benchmarks:

* :func:`build_tiny_xlmr`: an ``XLMRobertaModel`` (or ``XLMRobertaForSequenceClassification``) with a Unigram
  tokenizer in XLM-R's shape: NFKC normalizer (standing in for XLM-R's ``Precompiled`` sentencepiece charsmap,
  which is nmt-NFKC; building a charsmap needs sentencepiece), runs of spaces folded, Metaspace pre-tokenizer
  (``▁``, prefix always), ``<s>`` / ``<pad>`` / ``</s>`` / ``<unk>`` at ids 0 / 1 / 2 / 3 and ``<mask>`` last,
  post-processor ``<s> $A </s>`` and, for pairs, ``<s> $A </s> </s> $B </s>``; ``padding_idx`` 1, so position
  ids start at 2 and ``max_position_embeddings`` 514 gives 512 usable positions, as in XLM-R.
* :func:`build_tiny_modernbert`: a ``ModernBertModel`` (global + sliding-window local attention) with the same
  Unigram tokenizer's vocabulary behind ModernBERT-style ``[CLS]`` / ``[SEP]`` specials.

The Unigram model is trained in well under a second with the ``tokenizers`` library on
:data:`MULTILINGUAL_SENTENCES` (accented Latin, Chinese, Cyrillic, Greek, Arabic), cached per process.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path
from typing import Any

#: texts the tokenizer is trained on and the tests encode (several scripts; accents; CJK without spaces)
MULTILINGUAL_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Où est la gare ? Je voudrais un café crème, s'il vous plaît.",
    "Der Bär läuft über die Straße, während Jürgen schläft.",
    "¿Dónde está la biblioteca? Mañana será otro día, señor Muñoz.",
    "Ele não sabe se a ação começará às três horas.",
    "我们明天去北京看长城。今天天气很好。",
    "机器学习是人工智能的一个分支。",
    "Москва — столица России. Я люблю читать книги.",
    "Привет, как дела? Всё хорошо, спасибо.",
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "Zażółć gęślą jaźń; příliš žluťoučký kůň úpěl ďábelské ódy.",
]
#: training sentences: the texts above recombined into a few hundred lines
MULTILINGUAL_SENTENCES = [f"{a} {b}" for a, b in itertools.permutations(MULTILINGUAL_TEXTS, 2)] * 2 + [
    f"Nummer {i}: {MULTILINGUAL_TEXTS[i % len(MULTILINGUAL_TEXTS)]}" for i in range(200)]

XLMR_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # ids 0, 1, 2, 3 as in XLM-R; <mask> is added last


@functools.lru_cache(maxsize=2)
def unigram_tokenizer_json(vocab_size: int = 600, specials: tuple[str, ...] = tuple(XLMR_SPECIALS),
                           mask: str = "<mask>", cls: str = "<s>", sep: str = "</s>") -> str:
    """The text of a ``tokenizer.json``: Unigram trained on :data:`MULTILINGUAL_SENTENCES`, in XLM-R's shape
    (module docstring); ``specials`` take the first ids in order, ``mask`` the last. ``cls`` / ``sep`` build the
    post-processor (``cls $A sep``; pairs ``cls $A sep sep $B sep``)."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=list(specials), unk_token=specials[-1],
                                      shrinking_factor=0.75, max_piece_length=8)
    tok.train_from_iterator(MULTILINGUAL_SENTENCES, trainer=trainer)
    tok.add_special_tokens([AddedToken(mask, lstrip=True, special=True)])
    ids = {t: tok.token_to_id(t) for t in (cls, sep)}
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 {sep}:0 $B:0 {sep}:0",
        special_tokens=list(ids.items()))
    return tok.to_str()


def xlmr_tokenizer(model_max_length: int = 512):
    """An ``XLMRobertaTokenizer`` (transformers' fast tokenizer class) over :func:`unigram_tokenizer_json`."""
    from tokenizers import Tokenizer
    from transformers import XLMRobertaTokenizerFast

    tok = XLMRobertaTokenizerFast(tokenizer_object=Tokenizer.from_str(unigram_tokenizer_json()),
                                  model_max_length=model_max_length)
    ids = [tok.convert_tokens_to_ids(t) for t in XLMR_SPECIALS]
    assert ids == [0, 1, 2, 3], f"XLM-R's special ids are 0..3, the trained tokenizer has {ids}"
    return tok


def build_tiny_xlmr(folder: Path, *, head: str = "model", max_position_embeddings: int = 514,
                    hidden_size: int = 32, layers: int = 2, seed: int = 0, **config_overrides: Any) -> Path:
    """A plain Hugging Face folder: a random 2-layer ``XLMRobertaModel`` (``head="model"``) or
    ``XLMRobertaForSequenceClassification`` with one label (``head="classifier"``), and :func:`xlmr_tokenizer`
    with ``model_max_length = max_position_embeddings - 2`` (positions start after ``padding_idx``)."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification, XLMRobertaModel

    tok = xlmr_tokenizer(model_max_length=max_position_embeddings - 2)
    config = XLMRobertaConfig(vocab_size=len(tok), hidden_size=hidden_size, num_hidden_layers=layers,
                              num_attention_heads=4, intermediate_size=hidden_size * 2,
                              max_position_embeddings=max_position_embeddings, pad_token_id=1, bos_token_id=0,
                              eos_token_id=2, type_vocab_size=1, num_labels=1, **config_overrides)
    torch.manual_seed(seed)
    cls = XLMRobertaModel if head == "model" else XLMRobertaForSequenceClassification
    model = cls(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def build_tiny_modernbert(folder: Path, *, max_position_embeddings: int = 8192, hidden_size: int = 32,
                          layers: int = 3, local_attention: int = 8, seed: int = 0, **config_overrides: Any) -> Path:
    """A plain Hugging Face folder: a random ``ModernBertModel`` (``layers`` layers, every third one global, the
    others sliding-window with ``local_attention`` tokens, so texts of a few dozen tokens use both) with a
    Unigram tokenizer whose specials are ModernBERT's ``[CLS]`` / ``[SEP]`` / ``[PAD]`` / ``[UNK]`` / ``[MASK]``."""
    import torch
    from tokenizers import Tokenizer
    from transformers import ModernBertConfig, ModernBertModel, PreTrainedTokenizerFast

    raw = unigram_tokenizer_json(specials=("[CLS]", "[PAD]", "[SEP]", "[UNK]"), mask="[MASK]", cls="[CLS]",
                                 sep="[SEP]")
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(raw), cls_token="[CLS]", sep_token="[SEP]",
                                  pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]",
                                  model_max_length=max_position_embeddings)
    config = ModernBertConfig(vocab_size=len(tok), hidden_size=hidden_size, num_hidden_layers=layers,
                              num_attention_heads=4, intermediate_size=hidden_size * 2,
                              max_position_embeddings=max_position_embeddings, local_attention=local_attention,
                              global_attn_every_n_layers=3, pad_token_id=tok.pad_token_id,
                              cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id,
                              bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id, **config_overrides)
    torch.manual_seed(seed)
    model = ModernBertModel(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
