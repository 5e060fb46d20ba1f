"""Issue 11, item 3: a labeler config cannot name an arbitrary environment variable as its API key
(it is sent as a Bearer token to the config's server) nor a non-http(s) base_url; refused where
configs are loaded (files), saved (admin) and again where the backend is built."""
from __future__ import annotations

import pytest
from django.urls import reverse

from labeling.models import LabelerBackend, LabelerConfig
from labeling.services import ai_labeling

pytestmark = pytest.mark.django_db


def _yaml(tmp_path, **fields) -> str:
    body = "\n".join(f"{k}: {v}" for k, v in {"name": "http-judge", "backend": "openai", "model": "m",
                                                "base_url": "http://127.0.0.1:9/v1", **fields}.items())
    path = tmp_path / "c.yaml"
    path.write_text(body + "\n")
    return str(path)


@pytest.mark.parametrize("name", ["DATABASE_URL", "SECRET_KEY", "CELERY_BROKER_URL", "PATH", "RLAIF_LABELE"])
def test_file_with_a_foreign_key_variable_is_refused(tmp_path, name):
    with pytest.raises(ai_labeling.LabelerConfigFileError, match=f"api_key_env.*{name}"):
        ai_labeling.labeler_configs_load(paths=[_yaml(tmp_path, api_key_env=name)])
    assert not LabelerConfig.objects.exists()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:70/", "javascript:alert(1)", "127.0.0.1:8000/v1",
                                 "http://", "http://exa mple.org/v1"])
def test_file_with_a_non_http_base_url_is_refused(tmp_path, url):
    with pytest.raises(ai_labeling.LabelerConfigFileError, match="base_url"):
        ai_labeling.labeler_configs_load(paths=[_yaml(tmp_path, base_url=f'"{url}"', api_key_env="OPENAI_API_KEY")])
    assert not LabelerConfig.objects.exists()


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "RLAIF_LABELER_VLLM", "VLLM_API_KEY", '""'])
def test_allowed_key_variables_load(tmp_path, name):
    config, = ai_labeling.labeler_configs_load(paths=[_yaml(tmp_path, api_key_env=name, base_url="https://api.example.org/v1")])
    assert config.base_url == "https://api.example.org/v1"


def test_the_allow_list_is_a_setting(tmp_path, settings):
    settings.LABELER_API_KEY_ENV_ALLOWED = ["TEAM_KEY"]
    ai_labeling.labeler_configs_load(paths=[_yaml(tmp_path, api_key_env="TEAM_KEY")])
    with pytest.raises(ai_labeling.LabelerConfigFileError, match="api_key_env"):
        ai_labeling.labeler_configs_load(paths=[_yaml(tmp_path, api_key_env="OPENAI_API_KEY")])


def test_a_stored_bad_config_never_reads_the_key(monkeypatch):
    """A row written before the rule (or straight into the table) is refused when the backend is built."""
    monkeypatch.setenv("DATABASE_URL", "postgres://u:secret@db/x")
    bad = LabelerConfig.objects.create(name="old", backend=LabelerBackend.OPENAI, model="m",
                                       base_url="http://127.0.0.1:9/v1", api_key_env="DATABASE_URL")
    with pytest.raises(ValueError, match="api_key_env"):
        ai_labeling.backend_for(bad)
    monkeypatch.setenv("RLAIF_LABELER_KEY", "labeler-key")
    good = LabelerConfig.objects.create(name="good", backend=LabelerBackend.OPENAI, model="m",
                                        base_url="http://127.0.0.1:9/v1", api_key_env="RLAIF_LABELER_KEY")
    assert ai_labeling.backend_for(good).api_key == "labeler-key"


def test_admin_form_refuses_the_same(client, staff_user):
    client.force_login(staff_user)
    data = {"name": "adm", "backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": "DATABASE_URL", "preamble": "base", "shots": 0, "exemplar_selection": "fixed",
            "self_consistency_n": 1, "temperature": 0, "both_orders": "on", "max_prompt_tokens": 2048,
            "batch_size": 16, "extra": "{}", "exemplars": "[]", "score_method": "", "task": "summarization"}
    response = client.post(reverse("admin:labeling_labelerconfig_add"), data)
    assert response.status_code == 200
    assert "api_key_env" in response.context["adminform"].form.errors
    data.update(api_key_env="OPENAI_API_KEY", base_url="ftp://example.org/")
    response = client.post(reverse("admin:labeling_labelerconfig_add"), data)
    assert "base_url" in response.context["adminform"].form.errors
    assert not LabelerConfig.objects.exists()
    data.update(base_url="https://api.example.org/v1")
    response = client.post(reverse("admin:labeling_labelerconfig_add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert LabelerConfig.objects.get().api_key_env == "OPENAI_API_KEY"
