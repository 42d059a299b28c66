-- The folders the catalog's views read (see build_record_write.sql): snapshot path, merged version name.
SELECT snapshot, merged FROM mirror_catalog_build;
