"""PyTorch eager baseline on the GPU for the benchmarks of internal/hip.

    python3 torch_baseline.py [--preset tinyllama|llama3.2-1b|qwen2.5-0.5b]

transformers' model of the preset's architecture with its dimensions, random weights, in
float32 with TF32 off and eager attention: LlamaForCausalLM for tinyllama and llama3.2-1b
(llama3 RoPE scaling, tied embeddings), Qwen2ForCausalLM for qwen2.5-0.5b (q/k/v biases,
tied embeddings). Times the 1653-token prefill and one decoded token at 1653 context: the
median of timed repeats after warm-ups, with CUDA events. What the installed transformers
takes differs between versions (rope_scaling or rope_parameters, logits_to_keep or
num_logits_to_keep); the script checks that the model it built has the preset's RoPE
frequencies, biases and tied output, and prints what it used.
"""
import argparse
import inspect
import math
import statistics

import torch
import transformers

N = 1653

LLAMA3_ROPE = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}

PRESETS = {
    "tinyllama": dict(arch="llama", vocab=32000, dim=2048, ffn=5632, layers=22, heads=32, kv=4, ctx=2048,
                      eps=1e-5, base=10000.0, rope=None, tied=False),
    "llama3.2-1b": dict(arch="llama", vocab=128256, dim=2048, ffn=8192, layers=16, heads=32, kv=8, ctx=131072,
                        eps=1e-5, base=500000.0, rope=LLAMA3_ROPE, tied=True),
    "qwen2.5-0.5b": dict(arch="qwen2", vocab=151936, dim=896, ffn=4864, layers=24, heads=14, kv=2, ctx=32768,
                         eps=1e-6, base=1e6, rope=None, tied=True),
}


def want_inv_freq(p):
    """The preset's RoPE frequencies as llama.cpp's rope_freqs (and internal/ref) give them."""
    hd = p["dim"] // p["heads"]
    out = []
    for i in range(hd // 2):
        f = p["base"] ** (-2 * i / hd)
        r = p["rope"]
        if r is not None:
            lo = r["original_max_position_embeddings"] / r["low_freq_factor"]
            hi = r["original_max_position_embeddings"] / r["high_freq_factor"]
            wavelen = 2 * math.pi / f
            if wavelen > lo:
                f /= r["factor"]
            elif wavelen >= hi:
                s = (r["original_max_position_embeddings"] / wavelen - r["low_freq_factor"]) / (
                    r["high_freq_factor"] - r["low_freq_factor"])
                f = (1 - s) * f / r["factor"] + s * f
        out.append(f)
    return torch.tensor(out, dtype=torch.float64)


def build(name):
    p = PRESETS[name]
    if p["arch"] == "llama":
        cfg_cls, model_cls = transformers.LlamaConfig, transformers.LlamaForCausalLM
    else:
        cfg_cls, model_cls = transformers.Qwen2Config, transformers.Qwen2ForCausalLM
    kw = dict(vocab_size=p["vocab"], hidden_size=p["dim"], intermediate_size=p["ffn"], num_hidden_layers=p["layers"],
              num_attention_heads=p["heads"], num_key_value_heads=p["kv"], max_position_embeddings=p["ctx"],
              rms_norm_eps=p["eps"], tie_word_embeddings=p["tied"], attn_implementation="eager")
    params = inspect.signature(cfg_cls.__init__).parameters
    if "rope_parameters" in params:  # transformers 5: theta and scaling in one dict
        rope = {"rope_type": "default", "rope_theta": p["base"]}
        if p["rope"] is not None:
            rope.update(p["rope"])
        kw["rope_parameters"] = rope
        used = "rope_parameters"
    else:
        kw["rope_theta"] = p["base"]
        if p["rope"] is not None:
            kw["rope_scaling"] = dict(p["rope"])
        used = "rope_theta/rope_scaling"
    if p["arch"] == "qwen2" and "use_sliding_window" in params:
        kw["use_sliding_window"] = False
    cfg = cfg_cls(**kw)
    with torch.device("cuda"):
        model = model_cls(cfg).float().eval()

    # What the model really is: its RoPE frequencies, biases, tied output and attention.
    inv = None
    for mod in model.modules():
        if hasattr(mod, "inv_freq") and isinstance(mod.inv_freq, torch.Tensor):
            inv = mod.inv_freq.detach().double().cpu()
            break
    want = want_inv_freq(p)
    rope_ok = inv is not None and inv.shape == want.shape and torch.allclose(inv, want, rtol=1e-5, atol=0)
    attn = model.model.layers[0].self_attn
    bias = all(getattr(attn, n).bias is not None for n in ("q_proj", "k_proj", "v_proj"))
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    impl = getattr(model.config, "_attn_implementation", "?")
    print(f"torch {name}: {model_cls.__name__}, {sum(x.numel() for x in model.parameters()) / 1e9:.3f} G parameters, "
          f"{used}, rope frequencies as the preset's: {'yes' if rope_ok else 'NO'}, q/k/v biases: {bias}, "
          f"tied: {tied}, attention: {impl}")
    if not rope_ok or bias != (p["arch"] == "qwen2") or tied != p["tied"]:
        print(f"torch {name}: WARNING: the model differs from the preset (timings still printed)")
    return model, p


def timed(fn, warm=2, reps=10):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        out.append(a.elapsed_time(b))
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tinyllama", choices=sorted(PRESETS))
    name = ap.parse_args().preset
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model, p = build(name)
    fwd = inspect.signature(model.forward).parameters
    # The engine computes the logits of the last position only; so does the baseline where
    # transformers can (a 1653 x vocab product would otherwise dominate a large vocabulary).
    keep = {}
    for k in ("logits_to_keep", "num_logits_to_keep"):
        if k in fwd:
            keep = {k: 1}
            break
    ids = torch.randint(0, p["vocab"], (1, N), device="cuda")
    with torch.inference_mode():
        prefill = timed(lambda: model(ids, use_cache=True, **keep))
        past = model(ids[:, :-1], use_cache=True, **keep).past_key_values
        pos = torch.tensor([[N - 1]], device="cuda")

        def decode():
            # Drop the appended position again so that every repeat decodes at 1653 context.
            model(ids[:, -1:], past_key_values=past, position_ids=pos, use_cache=True)
            past.crop(N - 1)

        dec = timed(decode, warm=3, reps=30)
    print(f"torch {name}: torch {torch.__version__} transformers {transformers.__version__} eager fp32 (tf32 off) on "
          f"{torch.cuda.get_device_name()}, logits of {'the last position' if keep else 'every position'}: "
          f"prefill {N} tokens {prefill:.1f} ms, decode at {N} context {dec:.2f} ms/token")


if __name__ == "__main__":
    main()
