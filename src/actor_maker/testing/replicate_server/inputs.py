"""Input checks of the stand-in: flux-kontext-pro's input schema and multipart uploads."""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import json
from typing import Any
from urllib.parse import urlsplit

from actor_maker.testing.replicate_server.common import OUTPUT_FORMATS
from actor_maker.validation import ASPECT_RATIOS  # the values flux-kontext-pro accepts


class InputFieldsError(Exception):
    """Input validation failed: carries Replicate's ``invalid_fields`` entries."""

    def __init__(self, fields: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f["description"] for f in fields))
        self.fields = fields


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _field_error(name: str, kind: str, description: str) -> dict[str, str]:
    return {"type": kind, "field": f"input.{name}", "description": description}


def _image_url_error(value: str) -> str | None:
    """Why ``value`` is not an acceptable image input (URL or data URI), or ``None``."""
    if value.startswith("data:"):
        header, sep, payload = value.partition(",")
        if not sep or not header.endswith(";base64"):
            return "data URI must be base64-encoded (data:<type>;base64,<data>)"
        try:
            decoded = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return "data URI payload is not valid base64"
        return None if decoded else "data URI payload is empty"
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc:
        return None
    return "Does not match format 'uri'"


def validate_input(payload: object) -> dict[str, Any]:
    """Check a create body's ``input`` against flux-kontext-pro's schema; return it."""
    if not isinstance(payload, dict):
        raise InputFieldsError(
            [
                {
                    "type": "invalid_type",
                    "field": "(root)",
                    "description": "Invalid type. Expected: object",
                }
            ]
        )
    data = payload.get("input")
    if not isinstance(data, dict):
        raise InputFieldsError(
            [
                {
                    "type": "invalid_type",
                    "field": "input",
                    "description": f"Invalid type. Expected: object, given: {_type_name(data)}",
                }
            ]
        )
    errors: list[dict[str, str]] = []
    prompt = data.get("prompt")
    if "prompt" not in data:
        errors.append({"type": "required", "field": "input", "description": "prompt is required"})
    elif not isinstance(prompt, str):
        errors.append(
            _field_error(
                "prompt",
                "invalid_type",
                f"Invalid type. Expected: string, given: {_type_name(prompt)}",
            )
        )
    elif not prompt.strip():
        errors.append(_field_error("prompt", "string_gte", "prompt must not be empty"))
    image = data.get("input_image")
    if image is not None:
        if not isinstance(image, str):
            errors.append(
                _field_error(
                    "input_image",
                    "invalid_type",
                    f"Invalid type. Expected: string, given: {_type_name(image)}",
                )
            )
        elif (why := _image_url_error(image)) is not None:
            errors.append(_field_error("input_image", "format", why))
    ratio = data.get("aspect_ratio")
    if ratio is not None and ratio not in ASPECT_RATIOS:
        errors.append(
            _field_error(
                "aspect_ratio",
                "enum",
                "aspect_ratio must be one of the following: "
                + ", ".join(f'"{r}"' for r in ASPECT_RATIOS),
            )
        )
    fmt = data.get("output_format")
    if fmt is not None and fmt not in OUTPUT_FORMATS:
        errors.append(
            _field_error(
                "output_format", "enum", 'output_format must be one of the following: "jpg", "png"'
            )
        )
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        errors.append(
            _field_error(
                "seed",
                "invalid_type",
                f"Invalid type. Expected: integer, given: {_type_name(seed)}",
            )
        )
    tolerance = data.get("safety_tolerance")
    if tolerance is not None:
        if isinstance(tolerance, bool) or not isinstance(tolerance, int):
            errors.append(
                _field_error(
                    "safety_tolerance",
                    "invalid_type",
                    f"Invalid type. Expected: integer, given: {_type_name(tolerance)}",
                )
            )
        elif not 0 <= tolerance <= 6:
            errors.append(
                _field_error("safety_tolerance", "number_range", "Must be between 0 and 6")
            )
    upsampling = data.get("prompt_upsampling")
    if upsampling is not None and not isinstance(upsampling, bool):
        errors.append(
            _field_error(
                "prompt_upsampling",
                "invalid_type",
                f"Invalid type. Expected: boolean, given: {_type_name(upsampling)}",
            )
        )
    if errors:
        raise InputFieldsError(errors)
    return data


def parse_upload(content_type: str, body: bytes) -> tuple[str, str, bytes, dict[str, Any]]:
    """``(filename, content_type, data, metadata)`` from a multipart body with ``content``."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise ValueError("Expected a multipart/form-data body with a 'content' field.")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ValueError("Malformed multipart body.")
    found: tuple[str, str, bytes] | None = None
    metadata: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name == "content":
            filename = part.get_filename() or "file"
            found = (filename, part.get_content_type() or "application/octet-stream", data)
        elif name == "metadata" and data:
            try:
                loaded = json.loads(data)
            except ValueError as exc:
                raise ValueError("The 'metadata' field is not valid JSON.") from exc
            if isinstance(loaded, dict):
                metadata = loaded
    if found is None:
        raise ValueError("Missing the 'content' field.")
    return found[0], found[1], found[2], metadata
