-- Reserved: this number belongs to another branch's migration. Delete this file when that branch is merged.
SELECT 1;
