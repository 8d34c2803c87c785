"""PyTorch eager baseline on the GPU for the benchmarks of internal/hip.

transformers' LlamaForCausalLM with TinyLlama 1.1B's dimensions in float32 (random
weights), eager attention: the 1653-token prefill and one decoded token at 1653 context.
Prints the median of timed repeats after warm-ups, timed with CUDA events.
"""
import statistics

import torch
from transformers import LlamaConfig, LlamaForCausalLM

N = 1653


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
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                      num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
                      rms_norm_eps=1e-5, rope_theta=10000.0, attn_implementation="eager")
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).float().eval()
    ids = torch.randint(0, 32000, (1, N), device="cuda")
    with torch.inference_mode():
        prefill = timed(lambda: model(ids, use_cache=True))
        past = model(ids[:, :-1], use_cache=True).past_key_values
        pos = torch.tensor([[N - 1]], device="cuda")

        def decode():
            # Drop the appended position again so that every repeat decodes at 1653 context.
            model(ids[:, -1:], past_key_values=past, position_ids=pos, use_cache=True)
            past.crop(N - 1)

        dec = timed(decode, warm=3, reps=30)
    print(f"torch {torch.__version__} eager fp32 (tf32 off) on {torch.cuda.get_device_name()}: "
          f"prefill {N} tokens {prefill:.1f} ms, decode at {N} context {dec:.2f} ms/token")


if __name__ == "__main__":
    main()
