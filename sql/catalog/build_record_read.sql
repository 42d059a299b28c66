-- What the catalog was built from, and the folders its views read (see build_record_write.sql).
SELECT fingerprint, merged, snapshot FROM mirror_catalog_build;
