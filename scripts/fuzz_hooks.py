# Schemathesis hooks for scripts/fuzz.js: serializers for request bodies schemathesis has none for.
import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    # POST /v1/events takes NDJSON as the text it is (one event per line).
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")
