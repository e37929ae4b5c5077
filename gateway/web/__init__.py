"""The web page people use, served by the gateway: server-rendered HTML (Jinja2), a small
vendored script set (htmx and its SSE extension) and a stylesheet, all shipped in the package
and served with immutable cache headers. Login with an API token kept in an HttpOnly cookie;
roles decide what a person sees (docs/web.md).

- ``assets``: the static files and their versioned URLs;
- ``geo``: the one map's geometry (pure: WGS-84 degrees in, SVG coordinates out);
- ``charts``: the charger pages' timelines, energy columns and figures (pure);
- ``session``: the login cookie, CSRF tokens and bounded form parsing (pure but for the
  token check);
- ``ops``: the lanes and field pages' pure parts (reasons, the loudspeaker form, a decision's
  read and picture, wording);
- ``live``: the map's live markers, pure (coalescing, the stream's fragment);
- ``pages``: the routes, with ``map_page`` (and ``map_live``, its field markers),
  ``tariff_page``, ``charger_pages``, ``case_pages``, ``lane_pages`` and ``field_page``."""
