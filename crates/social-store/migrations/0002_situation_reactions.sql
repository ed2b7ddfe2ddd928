-- Whether the user sees situation reactions ('show' or 'hide'); existing users keep the default.
ALTER TABLE social_settings ADD COLUMN show_situation_reactions TEXT NOT NULL DEFAULT 'show';
