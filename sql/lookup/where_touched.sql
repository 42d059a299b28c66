siren IN (SELECT siren FROM ${touched})
