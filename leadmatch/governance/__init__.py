"""The rules: accounts and roles, authorized purposes, casework (dispositions, corroboration, closure), the audit trail, oversight and retention."""
