"""Can a worker reach a labeler? One quick probe per backend, no Django.

`probe_http` asks an OpenAI-compatible server for its `/models` list (vLLM, Ollama and OpenAI all
serve it) and checks the config's model is among them; `probe_local` loads the tokenizer of a
local transformers model (a path or a Hugging Face name) without loading the weights.

Both return a `Probe` whose `detail` is safe to show on a page: it names the HTTP status, the kind
of failure and the served model names, never the API key, the server's error body or a file path.
"""
from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Probe:
    ok: bool
    detail: str


def _models_url(base_url: str) -> str:
    root = base_url.rstrip("/")
    return root + "/models"


def probe_http(base_url: str, model: str, *, api_key: str = "", timeout: float = 5.0) -> Probe:
    """GET `<base_url>/models` within `timeout` seconds; ok when it answers and serves `model`."""
    if not base_url:
        return Probe(False, "no server URL configured")
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    req = urllib.request.Request(_models_url(base_url), headers=headers, method="GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = json.loads(resp.read(1_000_000).decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        hint = " (check the API key variable)" if exc.code in (401, 403) else ""
        return Probe(False, f"the server answered HTTP {exc.code}{hint}")
    except TimeoutError:
        return Probe(False, f"no answer within {timeout:g} s")
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return Probe(False, f"no answer within {timeout:g} s")
        if isinstance(reason, ConnectionRefusedError):
            return Probe(False, "connection refused: no server listens there")
        if isinstance(reason, socket.gaierror):
            return Probe(False, "the server's host name does not resolve")
        return Probe(False, f"cannot connect ({type(reason).__name__})")
    except (OSError, ValueError) as exc:  # ValueError: a malformed URL; JSONDecodeError is one too
        return Probe(False, f"no usable answer ({type(exc).__name__})")
    served = [str(m.get("id", "")) for m in (body.get("data") or []) if isinstance(m, dict)] if isinstance(body, dict) else []
    if model in served:
        return Probe(True, f"server reachable; it serves {model}")
    listed = ", ".join(served[:5]) + (" …" if len(served) > 5 else "")
    return Probe(False, f"server reachable, but it does not serve {model}" + (f" (it serves: {listed})" if listed else ""))


def probe_local(model: str) -> Probe:
    """Load the tokenizer of `model` (a local folder or a Hugging Face name): the files are there."""
    looks_like_path = model.startswith(("/", "./", "../", "~"))
    if looks_like_path:
        path = Path(model).expanduser()
        if not path.exists():
            return Probe(False, "the model folder does not exist on this worker")
        if not (path / "config.json").is_file():
            return Probe(False, "the model folder has no config.json (not a Hugging Face checkpoint)")
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(Path(model).expanduser()) if looks_like_path else model)
    except Exception as exc:  # OSError (missing files, no network), ValueError (unknown tokenizer), ...
        return Probe(False, f"the tokenizer could not be loaded ({type(exc).__name__})")
    return Probe(True, f"model files found on this worker (tokenizer: {len(tok)} tokens)")


def api_key_from_env(name: str) -> str:
    return os.environ.get(name, "") if name else ""
