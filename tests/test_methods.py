"""Methods: the pure losses against hand computations, one-pass dss against two passes, dynamic padding."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

from workbench.core.errors import ConfigError, UnknownNameError
from workbench.distill.encoding import Collator, Encoder, forward_logits, packed_mask, target_logits
from workbench.distill.losses import IGNORE, kd_loss
from workbench.distill.methods import get_method
from workbench.distill.students import build_word_tokenizer

ROWS = [
    {"input": "Tom has 12 apples. He eats 5.", "label": "12 - 5", "rationale": "He had 12 and ate 5, so 12 - 5 = 7."},
    {"input": "Mia has 3 pens and buys 4 more pens today.", "label": "3 + 4",
     "rationale": "3 pens and 4 more, so 3 + 4 = 7."},
    {"input": "Sam has 20 cards.", "label": "20", "rationale": "Sam has 20."},
]


@pytest.fixture(scope="module")
def tok():
    return build_word_tokenizer([r[k] for r in ROWS for k in ("input", "label", "rationale")])


def _t5(tok):
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=len(tok), d_model=32, d_kv=8, num_heads=4, d_ff=64, num_layers=2, num_decoder_layers=2,
                   dropout_rate=0.0, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                   decoder_start_token_id=tok.pad_token_id)
    return T5ForConditionalGeneration(cfg)


def _llama(tok):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, pad_token_id=tok.pad_token_id)
    return LlamaForCausalLM(cfg)


def _batch(tok, method, rows, causal):
    enc = Encoder(tok, causal)
    return Collator(tok.pad_token_id, causal, decoder_start_id=None if causal else tok.pad_token_id)(
        [enc.encode(method, r) for r in rows])


def _hand_mean_ce(logits, labels, causal):
    """Mean CE over target tokens, written out token by token."""
    total, count = 0.0, 0
    for i in range(labels.shape[0]):
        for t in range(labels.shape[1]):
            target = labels[i, t].item()
            if target == IGNORE:
                continue
            pos = t - 1 if causal else t
            total += -torch.log_softmax(logits[i, pos].double(), -1)[target].item()
            count += 1
    return total / count


@pytest.mark.parametrize("causal", [False, True])
def test_dss_loss_equals_hand_computation(tok, causal):
    model = _llama(tok) if causal else _t5(tok)
    method = get_method("dss", alpha=0.3)
    batch = _batch(tok, method, ROWS, causal)
    with torch.no_grad():
        logits = forward_logits(model, batch)
    out = method.loss(logits, batch, causal)
    is_label = batch["task_ids"] == 0
    hand_label = _hand_mean_ce(logits[is_label], batch["labels"][is_label], causal)
    hand_rationale = _hand_mean_ce(logits[~is_label], batch["labels"][~is_label], causal)
    assert out.loss.item() == pytest.approx(0.3 * hand_label + 0.7 * hand_rationale, rel=1e-5)
    assert out.parts["label_loss"].item() == pytest.approx(hand_label, rel=1e-5)
    assert out.parts["rationale_loss"].item() == pytest.approx(hand_rationale, rel=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_one_pass_dss_matches_two_passes_in_loss_and_gradients(tok, causal):
    """Stacked sub-batches (one forward) == two forwards with the model's own mean-token loss, as in the paper."""
    alpha = 0.4
    method = get_method("dss", alpha=alpha)
    one = _llama(tok) if causal else _t5(tok)
    two = _llama(tok) if causal else _t5(tok)
    two.load_state_dict(one.state_dict())
    batch = _batch(tok, method, ROWS, causal)
    loss_one = method.loss(forward_logits(one, batch), batch, causal).loss
    loss_one.backward()

    losses = []
    for task in (0, 1):  # each sub-batch padded on its own, loss computed by the model itself
        sub = [{k: [v[task]] if k in ("task_ids", "sources", "targets") else v for k, v in
                Encoder(tok, causal).encode(method, r).items()} for r in ROWS]
        b = Collator(tok.pad_token_id, causal, decoder_start_id=None if causal else tok.pad_token_id)(sub)
        kwargs = {k: b[k] for k in ("input_ids", "attention_mask", "labels")}
        losses.append(two(**kwargs).loss)
    loss_two = alpha * losses[0] + (1 - alpha) * losses[1]
    loss_two.backward()

    assert torch.allclose(loss_one, loss_two, atol=1e-5)
    for (name, p1), p2 in zip(one.named_parameters(), two.parameters()):
        assert p1.grad is not None, name
        assert torch.allclose(p1.grad, p2.grad, atol=1e-5, rtol=1e-4), name


def test_kd_loss_by_hand():
    student = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
    teacher = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    temp = 2.0
    expected = 0.0
    for s_row, t_row in zip(student, teacher):
        t_soft = torch.softmax(torch.log(t_row) / temp, -1)
        s_log = torch.log_softmax(s_row / temp, -1)
        expected += sum(p * (math.log(p) - q) for p, q in zip(t_soft.tolist(), s_log.tolist()))
    expected = expected / 2 * temp**2
    assert kd_loss(student, teacher, temp).item() == pytest.approx(expected, rel=1e-5)


def test_kd_method_mixes_kl_and_ce(tok):
    labels = ("12", "20", "7")
    rows = [{**r, "label": lab, "label_dist": {"12": 0.6, "20": 0.3, "7": 0.1}} for r, lab in zip(ROWS, labels)]
    method = get_method("kd", temperature=1.0, mix=0.25)
    enc = Encoder(tok, False)
    collate = Collator(tok.pad_token_id, False, tok.pad_token_id, class_token_ids=enc.class_token_ids(labels))
    batch = collate([enc.encode(method, r, labels) for r in rows])
    model = _t5(tok)
    with torch.no_grad():
        logits = forward_logits(model, batch)
    out = method.loss(logits, batch, False)
    ce = _hand_mean_ce(logits, batch["labels"], False)
    class_logits = logits[:, 0][:, batch["class_token_ids"]]
    kl = F.kl_div(F.log_softmax(class_logits, -1), batch["teacher_probs"], reduction="batchmean").item()
    assert out.loss.item() == pytest.approx(0.25 * kl + 0.75 * ce, rel=1e-4)


def test_collators_pad_dynamically_and_mask_prompts(tok):
    method = get_method("dss")
    enc = Encoder(tok, False, max_input_len=256, max_target_len=128)
    short = [enc.encode(method, ROWS[2])]
    batch = Collator(tok.pad_token_id, False, tok.pad_token_id)(short)
    assert batch["input_ids"].shape[1] == max(len(s) for s in short[0]["sources"]) < 20
    assert batch["task_ids"].tolist() == [0, 1]
    # Causal: one sequence per segment, loss only on the completion.
    cenc = Encoder(tok, True)
    feat = cenc.encode(get_method("standard"), ROWS[0])
    cb = Collator(tok.pad_token_id, True)([feat])
    n_prompt = len(feat["sources"][0])
    assert (cb["labels"][0, :n_prompt] == IGNORE).all()
    assert cb["labels"][0, n_prompt:].tolist() == feat["targets"][0]
    assert cb["input_ids"].shape[1] == n_prompt + len(feat["targets"][0])


def test_cot_target_and_parse():
    cot = get_method("cot")
    (_, src, tgt), = cot.segments(ROWS[0])
    assert src == ROWS[0]["input"] and tgt.endswith("So the answer is 12 - 5")
    assert cot.parse("He ate 5. So the answer is 12 - 5") == ("12 - 5", "He ate 5.", None)
    label, _, error = cot.parse("no marker here")
    assert label is None and "So the answer is" in error


def test_methods_refuse_rows_without_what_they_learn_from():
    with pytest.raises(ConfigError, match="rationale"):
        get_method("dss").check_rows([{"input": "x", "label": "1", "rationale": None}])
    with pytest.raises(ConfigError, match="label_dist"):
        get_method("kd").check_rows([{"input": "x", "label": "1", "rationale": None, "label_dist": None}])
    with pytest.raises(UnknownNameError):
        get_method("nope")


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_dss_equals_two_passes_of_the_plain_model(tok, attn):
    """A causal dss row packed as question + [label] branch + [rationale] branch (the question encoded once, each
    branch masked from the other, the output layer at target tokens only) gives the loss and gradients of two
    plain Hugging Face passes over question + marker + target, with the model's own mean-token loss."""
    alpha = 0.4
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, pad_token_id=tok.pad_token_id,
                      attn_implementation=attn)
    one, two = LlamaForCausalLM(cfg), LlamaForCausalLM(cfg)
    two.load_state_dict(one.state_dict())
    method = get_method("dss", alpha=alpha)
    enc = Encoder(tok, True, layout="marker-last")
    features = [enc.encode(method, r) for r in ROWS]
    assert all(f["shared"] >= 5 for f in features)  # the question's tokens, computed once
    batch = Collator(tok.pad_token_id, True)(features)
    assert batch["input_ids"].shape[0] == len(ROWS)  # one packed row per example
    logits, targets, tasks = target_logits(one, batch, True)
    n_targets = sum(len(t) for f in features for t in f["targets"])
    assert logits.shape[0] == n_targets  # the output layer ran at target tokens only
    out = method.target_loss(logits, targets, tasks)
    out.loss.backward()

    losses = []
    for task in (0, 1):
        sub = [{**f, "shared": 0, **{k: [f[k][task]] for k in ("task_ids", "sources", "targets")}} for f in features]
        b = Collator(tok.pad_token_id, True)(sub)
        losses.append(two(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]).loss)
    reference = alpha * losses[0] + (1 - alpha) * losses[1]
    reference.backward()

    assert out.loss.item() == pytest.approx(reference.item(), rel=1e-6)
    assert out.parts["label_loss"].item() == pytest.approx(losses[0].item(), rel=1e-6)
    for (name, p1), p2 in zip(one.named_parameters(), two.parameters()):
        assert torch.allclose(p1.grad, p2.grad, atol=1e-6, rtol=1e-5), name
    # The whole-logits path (kd's, and any method that declares needs_logits) sees the same packed rows.
    with torch.no_grad():
        whole = method.loss(forward_logits(one, batch), batch, True).loss
    assert whole.item() == pytest.approx(reference.item(), rel=1e-6)


def test_packed_rows_keep_each_task_apart(tok):
    """The mask lets a task see the shared question and itself, never the other task; padding sees itself."""
    seg = torch.tensor([[0, 0, 1, 1, 2, 2, -1]])
    allowed = packed_mask(seg, torch.float32, boolean=True)[0, 0]
    assert allowed[4].tolist() == [True, True, False, False, True, False, False]  # task 2 skips task 1
    assert allowed[3].tolist() == [True, True, True, True, False, False, False]
    assert allowed[6].tolist() == [False] * 6 + [True]
    additive = packed_mask(seg, torch.float32, boolean=False)[0, 0]
    assert (additive[4, 2] == torch.finfo(torch.float32).min) and additive[4, 0] == 0


def test_marker_layouts_put_the_task_marker_where_the_run_says(tok):
    first, last = Encoder(tok, True, layout="marker-first"), Encoder(tok, True, layout="marker-last")
    text = ROWS[0]["input"]
    ids = lambda t: tok(t, add_special_tokens=False).input_ids  # noqa: E731
    marker = tok.convert_tokens_to_ids("[label]")
    assert first.prompt_ids(text, "[label]")[0] == marker  # [label] question =>
    tail = ids(" [label] =>")
    assert last.prompt_ids(text, "[label]")[-len(tail):] == tail and marker in tail  # question [label] =>
    assert last.prompt_ids(text, "[label]")[: len(ids(text))] == ids(text)  # the question, tokenized on its own
    assert Encoder(tok, False).prompt_ids(text, "[label]")[-1] == tok.eos_token_id
