-- The diffusion rule for natural persons, one definition for every reader (mirror.core.schema
-- .opted_out_person renders it): a unit that is partially diffusible (statut P, ${statut}) and is a natural
-- person or may be one (catégorie juridique ${categorie}: 1000 entrepreneur individuel, 2xxx groupings of
-- persons, or unknown). Its identity is masked in the *_diffusibles views (sql/views/20_diffusibles.sql),
-- the enseignes and dénomination usuelle of its établissements too, and no name finds it (the search
-- index, `mirror export --name`). Never NULL.
coalesce(${statut} = 'P' AND (${categorie} IS NULL OR ${categorie} = '1000' OR ${categorie} LIKE '2%'), false)
