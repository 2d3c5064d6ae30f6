"""Generation backends for evaluation: transformers (any machine) and vLLM (GPU).

    gen = HFGenerator("path/to/hf_model", template="auto")
    samples = gen.generate([row.messages for row in rows], n_samples=4, temperature=0.7,
                           max_new_tokens=512, batch_size=8, seed=0)

Offers:
- TEMPLATES / render_prompt(): "auto" (the tokenizer's own chat template) or a forced one
  ("default" plain User:/Assistant:, "chatml", "llama" = Llama-3 headers), each with its stop marker;
  chat_template_kwargs (e.g. {"enable_thinking": false}) go to the template as verl's
  data.apply_chat_template_kwargs do in training.
- parse_chat_template_kwargs(text, where): a JSON object or ValueError naming where it came from.
- Sample: text, tokens, truncated (max_new_tokens reached without a stop), latency_s (the call
  that produced it: a whole batch in batch mode).
- HFGenerator: batched generate() with left padding, prompts sorted by length (less padding),
  bf16 on GPU / fp32 on CPU; stream_chat() for the interactive mode (TextIteratorStreamer).
- VLLMGenerator: vllm.LLM + SamplingParams(n=K, seed, top_p); vllm_unavailable_reason() says
  why it cannot run here (not installed, no GPU).
- ModelLoadError: the model folder or id cannot be loaded (one line, the cause included).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

logger = logging.getLogger(__name__)

_DEFAULT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] + '\n\n' }}"
    "{% elif m['role'] == 'user' %}{{ 'User: ' + m['content'] + '\n' }}"
    "{% else %}{{ 'Assistant: ' + m['content'] + '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
_CHATML_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_LLAMA_TEMPLATE = (
    "{{ '<|begin_of_text|>' }}"
    "{% for m in messages %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# name -> (jinja template, stop marker); "auto" uses the tokenizer's template and EOS.
TEMPLATES: dict[str, tuple[str | None, str | None]] = {
    "auto": (None, None),
    "default": (_DEFAULT_TEMPLATE, "\nUser:"),
    "chatml": (_CHATML_TEMPLATE, "<|im_end|>"),
    "llama": (_LLAMA_TEMPLATE, "<|eot_id|>"),
}


class ModelLoadError(RuntimeError):
    """--model_path names something transformers/vLLM cannot load."""


def parse_chat_template_kwargs(text: str, where: str = "--chat_template_kwargs") -> dict:
    """
    >>> parse_chat_template_kwargs('{"enable_thinking": false}')
    {'enable_thinking': False}
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}): {text!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a JSON object such as '{{\"enable_thinking\": false}}', got {text!r}")
    return value


@dataclass
class Sample:
    text: str
    tokens: int
    truncated: bool
    latency_s: float


def render_prompt(tokenizer, messages: list[dict[str, str]], template: str, chat_template_kwargs: dict | None = None) -> str:
    """The prompt text for messages under the chosen template (generation prompt added)."""
    if template not in TEMPLATES:
        raise ValueError(f"--template {template}: choose one of {', '.join(TEMPLATES)}")
    chat_template = TEMPLATES[template][0]
    if chat_template is None and not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "the model's tokenizer has no chat template; pass --template default, chatml or llama"
        )
    return tokenizer.apply_chat_template(
        messages, chat_template=chat_template, add_generation_prompt=True, tokenize=False,
        **(chat_template_kwargs or {}),
    )


def vllm_unavailable_reason() -> str | None:
    """None when vLLM can run here, else the reason it cannot."""
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed (pip install 'verl[vllm]' on a GPU machine)"
    import torch

    if not torch.cuda.is_available():
        return "vLLM needs a CUDA GPU and none is visible (torch.cuda.is_available() is False)"
    return None


class HFGenerator:
    """transformers generate(): batched, left padded, length sorted; bf16 on GPU, fp32 on CPU."""

    backend = "transformers"

    def __init__(
        self, model_path: str, template: str = "auto", device: str = "auto", chat_template_kwargs: dict | None = None
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if template not in TEMPLATES:
            raise ValueError(f"--template {template}: choose one of {', '.join(TEMPLATES)}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        # bf16 halves memory on GPU; CPU bf16 matmuls are slow and lossy, so fp32 there.
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
            self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device).eval()
        except Exception as exc:  # OSError, SafetensorError, ValueError, ...: one line, not a traceback
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ModelLoadError(f"cannot load the model from {model_path}: {type(exc).__name__}: {first}") from exc
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.template = template
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.stop_ids, self.stop_string = self._stop_markers()

    def _stop_markers(self) -> tuple[set[int], str | None]:
        ids: set[int] = set()
        for source in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            if source is None:
                continue
            ids.update(source if isinstance(source, list) else [source])
        marker = TEMPLATES[self.template][1]
        if marker is None:
            return ids, None
        marker_ids = self.tokenizer.encode(marker, add_special_tokens=False)
        if len(marker_ids) == 1 and marker in self.tokenizer.get_vocab():
            return ids | set(marker_ids), None
        return ids, marker  # not one token in this vocabulary: stop on the string instead

    def prompt_text(self, messages: list[dict[str, str]]) -> str:
        return render_prompt(self.tokenizer, messages, self.template, self.chat_template_kwargs)

    def _gen_kwargs(self, temperature: float, max_new_tokens: int, top_p: float = 1.0) -> dict:
        kwargs = dict(
            max_new_tokens=max_new_tokens,
            do_sample=temperature > 0,
            eos_token_id=sorted(self.stop_ids),
            pad_token_id=self.tokenizer.pad_token_id,
        )
        if temperature > 0:
            # top_k=0: no top-k cut, as vLLM's default (HF's default is top_k=50); top_p=1.0 keeps all.
            kwargs.update(temperature=temperature, top_k=0, top_p=top_p)
        else:
            kwargs.update(temperature=None, top_k=None, top_p=None)
        if self.stop_string:
            kwargs.update(stop_strings=[self.stop_string], tokenizer=self.tokenizer)
        return kwargs

    def _decode(self, token_ids: list[int], max_new_tokens: int, latency: float) -> Sample:
        n = len(token_ids)
        stopped = False
        for i, tok in enumerate(token_ids):
            if tok in self.stop_ids:
                n, stopped = i + 1, True  # the stop token counts: the model produced it
                break
        text = self.tokenizer.decode(token_ids[:n], skip_special_tokens=True)
        if self.stop_string and self.stop_string in text:
            text, stopped = text.split(self.stop_string, 1)[0], True
        return Sample(text=text.strip(), tokens=n, truncated=not stopped and n >= max_new_tokens, latency_s=latency)

    def generate(
        self,
        prompts: list[list[dict[str, str]]],
        n_samples: int = 1,
        temperature: float = 0.7,
        max_new_tokens: int = 512,
        batch_size: int = 8,
        seed: int = 0,
        progress: Callable[[int], None] | None = None,
        top_p: float = 1.0,
    ) -> list[list[Sample]]:
        """n_samples Samples per prompt, in input order; progress(k) is called after k more samples."""
        import torch
        from transformers import set_seed

        set_seed(seed)
        texts = [self.prompt_text(m) for m in prompts]
        lengths = [len(self.tokenizer(t, add_special_tokens=False).input_ids) for t in texts]
        # Longest first: similar lengths share a batch (less padding) and an out-of-memory shows at once.
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        results: list[list[Sample]] = [[] for _ in texts]
        kwargs = self._gen_kwargs(temperature, max_new_tokens, top_p)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(self.device)
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = self.model.generate(**enc, num_return_sequences=n_samples, **kwargs)
            latency = time.perf_counter() - t0
            new_tokens = out[:, enc["input_ids"].shape[1] :].tolist()
            for j, i in enumerate(idx):
                for k in range(n_samples):
                    results[i].append(self._decode(new_tokens[j * n_samples + k], max_new_tokens, latency))
            if progress:
                progress(len(idx) * n_samples)
        return results

    def stream_chat(
        self, messages: list[dict[str, str]], temperature: float, max_new_tokens: int, top_p: float = 1.0
    ) -> Iterator[str | Sample]:
        """Yield text pieces as they are generated, then the final Sample."""
        import torch
        from transformers import TextIteratorStreamer

        enc = self.tokenizer(self.prompt_text(messages), return_tensors="pt", add_special_tokens=False).to(self.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        holder: dict = {}

        def run() -> None:
            try:
                with torch.inference_mode():
                    holder["out"] = self.model.generate(
                        **enc, streamer=streamer, **self._gen_kwargs(temperature, max_new_tokens, top_p)
                    )
            except BaseException as exc:  # surfaced in the caller's thread below
                holder["error"] = exc
                streamer.end()

        t0 = time.perf_counter()
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        shown = ""
        for piece in streamer:
            if self.stop_string and self.stop_string in shown + piece:
                piece = (shown + piece).split(self.stop_string, 1)[0][len(shown) :]
                shown += piece
                yield piece
                break
            shown += piece
            yield piece
        thread.join()
        if "error" in holder:
            raise holder["error"]
        tokens = holder["out"][0, enc["input_ids"].shape[1] :].tolist()
        yield self._decode(tokens, max_new_tokens, time.perf_counter() - t0)


class VLLMGenerator:
    """vLLM offline inference: one LLM per model, SamplingParams(n=K, seed)."""

    backend = "vllm"

    def __init__(
        self, model_path: str, template: str = "auto", device: str = "auto", chat_template_kwargs: dict | None = None
    ):
        reason = vllm_unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        from vllm import LLM

        try:
            self.llm = LLM(model=model_path)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ModelLoadError(f"cannot load the model from {model_path} with vLLM: {type(exc).__name__}: {first}") from exc
        self.tokenizer = self.llm.get_tokenizer()
        self.template = template
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.stop_string = TEMPLATES[template][1] if template in TEMPLATES else None

    def prompt_text(self, messages: list[dict[str, str]]) -> str:
        return render_prompt(self.tokenizer, messages, self.template, self.chat_template_kwargs)

    def _params(self, n: int, temperature: float, max_new_tokens: int, seed: int, top_p: float = 1.0):
        from vllm import SamplingParams

        return SamplingParams(
            n=n,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_new_tokens,
            seed=seed,
            stop=[self.stop_string] if self.stop_string else None,
        )

    def generate(
        self, prompts, n_samples=1, temperature=0.7, max_new_tokens=512, batch_size=8, seed=0, progress=None, top_p=1.0
    ):
        # vLLM schedules its own batches (continuous batching): batch_size is not used here.
        texts = [self.prompt_text(m) for m in prompts]
        t0 = time.perf_counter()
        outputs = self.llm.generate(texts, self._params(n_samples, temperature, max_new_tokens, seed, top_p))
        latency = time.perf_counter() - t0
        results = []
        for out in outputs:
            results.append(
                [
                    Sample(
                        text=c.text.strip(),
                        tokens=len(c.token_ids),
                        truncated=c.finish_reason == "length",
                        latency_s=latency,
                    )
                    for c in out.outputs
                ]
            )
        if progress:
            progress(len(texts) * n_samples)
        return results

    def stream_chat(self, messages, temperature, max_new_tokens, top_p=1.0):
        # The offline LLM API does not stream: the whole answer comes at once.
        sample = self.generate([messages], 1, temperature, max_new_tokens, seed=int(time.time()), top_p=top_p)[0][0]
        yield sample.text
        yield sample
