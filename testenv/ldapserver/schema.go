package ldapserver

// labSchema is the lab's own schema (slapd.conf format): just enough of Gluu Server's directory for
// the cache configuration. OIDs are in OpenLDAP's experimental arc (1.3.6.1.4.1.4203.666), which is
// reserved for tests; they are not Gluu's.
const labSchema = `# runbook lab schema: the parts of Gluu Server's directory the lab needs.
objectIdentifier RunbookLab 1.3.6.1.4.1.4203.666.11.77
objectIdentifier RunbookLabAT RunbookLab:1
objectIdentifier RunbookLabOC RunbookLab:2

attributetype ( RunbookLabAT:1 NAME 'inum'
	DESC 'Gluu i-number of an entry'
	EQUALITY caseIgnoreMatch
	SUBSTR caseIgnoreSubstringsMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )

attributetype ( RunbookLabAT:2 NAME 'oxCacheConfiguration'
	DESC 'Gluu cache configuration (JSON)'
	EQUALITY caseExactMatch
	SUBSTR caseExactSubstringsMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.15
	SINGLE-VALUE )

attributetype ( RunbookLabAT:3 NAME 'gluuHostname'
	DESC 'Host name of the Gluu Server instance'
	EQUALITY caseIgnoreMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )

objectclass ( RunbookLabOC:1 NAME 'gluuConfiguration'
	DESC 'Gluu 4.x server configuration (ou=configuration,o=gluu)'
	SUP top STRUCTURAL
	MUST ou
	MAY ( oxCacheConfiguration $ gluuHostname $ description ) )

objectclass ( RunbookLabOC:2 NAME 'gluuAppliance'
	DESC 'Gluu 3.1.x appliance (inum=...,ou=appliances,o=gluu)'
	SUP top STRUCTURAL
	MUST inum
	MAY ( oxCacheConfiguration $ gluuHostname $ description ) )
`
