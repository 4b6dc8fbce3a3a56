"""Version of the converter's output format.

Bump it whenever the bytes written for the same input could change (ordering, element type,
tag filtering, header fields): it is part of the content fingerprint, so bumping it makes the
object-store volume cache miss instead of serving volumes made by an older converter.
"""

CONVERTER_VERSION = "1"
