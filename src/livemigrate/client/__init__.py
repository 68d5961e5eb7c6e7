"""A small typed client for both APIs (httpx + DigestAuth), used by the CLI, the tests and the link channel."""

from livemigrate.client.errors import ApiCallError

__all__ = ["ApiCallError"]
