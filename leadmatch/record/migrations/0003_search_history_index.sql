-- a search's history is read on every search and `show`; the audit table only grows.
CREATE INDEX audit_search ON audit (search_id);
CREATE INDEX audit_case ON audit (case_number);
