from herd.names import normalize_model_name


def test_bare_name_gets_latest_tag() -> None:
    assert normalize_model_name("llama3.2") == "llama3.2:latest"


def test_matching_is_case_insensitive() -> None:
    assert normalize_model_name("Llama3.2:3B") == "llama3.2:3b"


def test_default_registry_and_namespace_are_dropped() -> None:
    assert normalize_model_name("registry.ollama.ai/library/qwen2.5:7b") == "qwen2.5:7b"
    assert normalize_model_name("library/qwen2.5") == "qwen2.5:latest"


def test_user_namespace_is_kept() -> None:
    assert normalize_model_name("someone/model:q4") == "someone/model:q4"
