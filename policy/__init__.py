"""The oci-llm-stack guardrails: CrossGuard policy pack (`__main__.py`) over plain rules (`rules.py`)."""
