"""Validators and fields both services' schemas use, so that both refuse the same input."""

import re

import marshmallow as ma
from marshmallow import fields

# What a query integer may look like: Python's int() also takes full-width and other
# Unicode digits, "1_0", "+5" and " 5", which no client means as a number.
ASCII_INTEGER = re.compile(r"-?[0-9]+")


def utf8_text(value):
    """Refuse text that UTF-8 cannot hold: a lone surrogate (a "\\ud800" escape alone)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ma.ValidationError("Must be valid Unicode text: no lone surrogate.") from None


class QueryInteger(fields.Integer):
    """An integer in a query string: ASCII digits, with an optional leading minus, only."""

    default_error_messages = {"invalid": "Not a valid integer: use ASCII digits (0-9) only."}

    def _validated(self, value):
        if isinstance(value, str) and not ASCII_INTEGER.fullmatch(value):
            raise self.make_error("invalid")
        return super()._validated(value)
