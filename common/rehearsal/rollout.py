"""The rehearsal's one stand-in: transformers serves what vLLM/SGLang serve in a launch.

    client = GenerateClient(engine, rollout_config, tokenizer)   # after each optimizer step: client.sync()
    server = RewardModelServer(model_path, attn)                 # vLLM's /classify for a reward model

Offers:
- GenerateClient: the `llm_client` verl's AgentLoopWorker calls (`await generate(request_id,
  prompt_ids=..., sampling_params=...) -> TokenOutput`, the interface of
  verl/workers/rollout/llm_server.py LLMServerClient). It holds a transformers copy of the policy
  whose weights come from the actor engine through the export verl uses to feed vLLM
  (engine.get_per_tensor_param(); with LoRA the merged export, _merged_lora_per_tensor_param, because
  transformers' generate has no adapter slot). Sampling follows the request: temperature, top_p,
  top_k, and max_tokens = min(response_length, prompt_length + response_length - prompt) clamped to
  [1, max_model_len - prompt], the rule of vllm_async_server.py (generate, "Determine max_tokens").
- RewardModelServer: an HTTP server on 127.0.0.1 answering POST /classify like vLLM's pooling
  endpoint ({"data": [{"probs": [score]}]}, raw logits: verl sends use_activation=False), computed by
  the reward model's transformers *ForSequenceClassification. verl's own RewardLoopWorker builds the
  request (reward tokenizer chat template) and reads the score (experimental/reward_loop/reward_loop.py,
  compute_score_disrm).

Why a stand-in: verl 0.9.1's rollout is server-only (workers/rollout/base.py registers vLLM,
SGLang and TRT-LLM), none of which runs without a GPU. Everything around it is verl's own code.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Seconds the client waits for sibling requests before generating them as one batch.
BATCH_WINDOW_S = 0.05
STAND_IN_NOTE = ("rollout: transformers' generate on the actor's exported weights stands in for "
                 "vLLM/SGLang (verl 0.9.1's rollout is server-only: verl/workers/rollout/base.py)")


def _dtype(name: str):
    import torch

    return {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
            "float32": torch.float32, "fp32": torch.float32}.get(str(name), torch.bfloat16)


class GenerateClient:
    """verl's LLM server client interface, answered by transformers' generate on the policy's weights."""

    def __init__(self, engine, rollout_config, hf_config, tokenizer, generation_config=None, device: str = "cpu"):
        import torch
        from transformers import AutoModelForCausalLM

        # vLLM seeds its engine with rollout.seed; so does the stand-in, so a rehearsal samples the same responses.
        torch.manual_seed(int(rollout_config.get("seed", 0) or 0))
        self.engine = engine
        self.config = rollout_config
        self.tokenizer = tokenizer
        self.device = device
        self.model = AutoModelForCausalLM.from_config(hf_config, torch_dtype=_dtype(rollout_config.dtype)).to(device)
        self.model.eval()
        self.eos_ids = self._eos_ids(generation_config, tokenizer)
        self.max_model_len = int(rollout_config.max_model_len or (rollout_config.prompt_length + rollout_config.response_length))
        self.requests = 0
        self.generated_tokens = 0
        self._pending: list = []
        self._collecting = False
        self.sync()

    @staticmethod
    def _eos_ids(generation_config, tokenizer) -> list[int]:
        ids = getattr(generation_config, "eos_token_id", None) if generation_config is not None else None
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
            ids.append(tokenizer.eos_token_id)
        return ids

    def sync(self) -> int:
        """Copy the actor's current weights in, as verl's update_weights does for vLLM; returns tensors copied."""
        import torch

        if getattr(self.engine, "_is_lora", False):
            params = self.engine._merged_lora_per_tensor_param()
        else:
            params, _ = self.engine.get_per_tensor_param()
        state = self.model.state_dict()
        copied = 0
        with torch.no_grad():
            for name, tensor in params:
                name = name.removeprefix("base_model.model.")
                if name not in state:
                    continue
                state[name].copy_(tensor.detach().to(state[name].dtype))
                copied += 1
        if self.model.config.tie_word_embeddings:
            self.model.tie_weights()
        if copied == 0:
            raise RuntimeError("the actor exported no weight the rollout model knows (parameter names differ)")
        return copied

    def max_tokens(self, prompt_len: int, sampling_params: dict) -> int:
        """vllm_async_server.py's rule for the response budget of one request."""
        if "max_tokens" in sampling_params:
            wanted = int(sampling_params["max_tokens"])
        elif "max_new_tokens" in sampling_params:
            wanted = int(sampling_params["max_new_tokens"])
        else:
            wanted = min(self.config.response_length, self.config.prompt_length + self.config.response_length - prompt_len)
        possible = self.max_model_len - prompt_len
        if possible < 1:
            raise ValueError(f"prompt of {prompt_len} tokens leaves no room within max_model_len {self.max_model_len}")
        return max(1, min(wanted, possible))

    async def generate(self, request_id, *, prompt_ids, sampling_params, **_kwargs):
        """One request; requests that arrive together (the agent loop sends a batch's at once) share one
        batched generate call, as a server batches concurrent requests."""
        import asyncio

        future = asyncio.get_running_loop().create_future()
        self._pending.append((list(prompt_ids), dict(sampling_params), future))
        if not self._collecting:
            self._collecting = True
            try:
                # Wait until no new request arrived for one window: siblings are still templating.
                seen = -1
                while seen != len(self._pending):
                    seen = len(self._pending)
                    await asyncio.sleep(BATCH_WINDOW_S)
                pending, self._pending = self._pending, []
            finally:
                self._collecting = False
            try:
                self._run(pending)
            except Exception as exc:
                for _, _, waiting in pending:
                    if not waiting.done():
                        waiting.set_exception(exc)
        return await future

    def _run(self, pending) -> None:
        groups: dict[str, list] = {}
        for request in pending:
            groups.setdefault(json.dumps(request[1], sort_keys=True, default=str), []).append(request)
        for requests in groups.values():
            for request, output in zip(requests, self._generate_batch(requests), strict=True):
                request[2].set_result(output)

    def _generate_batch(self, requests) -> list:
        import torch

        from verl.workers.rollout.replica import TokenOutput

        sampling_params = requests[0][1]
        budgets = [self.max_tokens(len(prompt), sampling_params) for prompt, _, _ in requests]
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else (self.eos_ids or [0])[0]
        width = max(len(prompt) for prompt, _, _ in requests)
        # Left padding: every prompt ends where generation starts.
        ids = torch.tensor([[pad_id] * (width - len(p)) + p for p, _, _ in requests], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p, _, _ in requests], dtype=torch.long)
        temperature = float(sampling_params.get("temperature", 1.0) or 0.0)
        top_k = int(sampling_params.get("top_k", -1) or -1)
        want_logprobs = bool(sampling_params.get("logprobs"))
        kwargs = dict(
            max_new_tokens=max(budgets),
            do_sample=temperature > 0,
            eos_token_id=self.eos_ids or None,
            pad_token_id=pad_id,
            output_scores=want_logprobs,
            return_dict_in_generate=True,
            repetition_penalty=float(sampling_params.get("repetition_penalty", 1.0) or 1.0),
        )
        if temperature > 0:
            kwargs.update(temperature=temperature, top_p=float(sampling_params.get("top_p", 1.0)),
                          top_k=top_k if top_k > 0 else 0)
        with torch.no_grad():
            out = self.model.generate(ids.to(self.device), attention_mask=mask.to(self.device), **kwargs)
        outputs = []
        for row, budget in enumerate(budgets):
            tokens = out.sequences[row, width:].tolist()[:budget]
            for i, token in enumerate(tokens):  # up to and including the first end-of-sequence token
                if token in self.eos_ids:
                    tokens = tokens[: i + 1]
                    break
            log_probs = None
            if want_logprobs:
                log_probs = [float(torch.log_softmax(out.scores[i][row].float(), dim=-1)[token])
                             for i, token in enumerate(tokens)]
            self.requests += 1
            self.generated_tokens += len(tokens)
            outputs.append(TokenOutput(token_ids=tokens, log_probs=log_probs, stop_reason="completed", num_preempted=0))
        return outputs


class RewardModelServer:
    """vLLM's /classify endpoint for a one-label reward model, served by transformers on 127.0.0.1."""

    def __init__(self, model_path: str, attn_implementation: str = "sdpa", device: str = "cpu"):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            model_path, torch_dtype=torch.float32 if device == "cpu" else torch.bfloat16,
            attn_implementation=attn_implementation).to(device)
        self.device = device
        self.model.eval()
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id or self.tokenizer.eos_token_id
        self.scored = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    payload = json.loads(self.rfile.read(length) or b"{}")
                    if self.path.rstrip("/") != "/classify":
                        raise ValueError(f"unknown endpoint {self.path}")
                    body = json.dumps({"data": [{"probs": [server.score(payload["input"])]}]}).encode()
                    self.send_response(200)
                except Exception as exc:  # the reward loop reports the status and message
                    body = json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode()
                    self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args):  # keep the rehearsal's output readable
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def score(self, text: str) -> float:
        import torch

        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.device)
        with torch.no_grad():
            logits = self.model(**ids).logits
        self.scored += 1
        return float(logits[0, -1].float())

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
