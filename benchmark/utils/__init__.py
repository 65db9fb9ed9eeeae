"""Small utilities with no knowledge of methods, pools or applications: the home folder and its
content-addressed cache, atomic JSON files, provenance, and silencing noisy libraries."""
