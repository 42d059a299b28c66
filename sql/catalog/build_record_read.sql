-- What the catalog was built from (see build_record_write.sql).
SELECT fingerprint, merged FROM mirror_catalog_build;
