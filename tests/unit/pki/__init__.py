"""Unit tests of libs.pki: pure, table-driven, names are sentences."""
