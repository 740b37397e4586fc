-- Functions are executable by PUBLIC when created; nothing in recsys is. The grants to
-- recsys_reader, recsys_admin and recsys_override are made next to each function.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA recsys FROM PUBLIC;
