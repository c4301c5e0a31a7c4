package sample

import "strings"

// Word lists. "Morgan" is deliberately absent from lastNames: the only
// people called Morgan are the demo subject and her namesake, so no random
// contact or agent can get an avery.morgan address by chance.
var (
	firstNames = []string{
		"Olivia", "Liam", "Emma", "Noah", "Sophia", "Mateo", "Isabella", "Lucas",
		"Mia", "Ethan", "Amelia", "Kenji", "Priya", "Aarav", "Zoë", "José",
		"Søren", "Łukasz", "Fatima", "Chloé", "Niamh", "Siobhan", "Mohammed", "Wei",
		"Yuki", "Ingrid", "Lars", "Anaïs", "Björn", "Camila", "Diego", "Elena",
		"Farah", "Hana", "Ivan", "Jamal", "Kofi", "Leila", "Marta", "Nikos",
		"Omar", "Paula", "Quinn", "Rafael", "Sara", "Tomás", "Uma", "Viktor",
		"Wanda", "Xavier", "Yara", "Zane", "Avery",
	}
	lastNames = []string{
		"Smith", "Johnson", "García", "Nguyen", "Müller", "O'Brien", "Kowalski", "Patel",
		"Kim", "Rossi", "Silva", "Haddad", "Andersson", "Dubois", "Yamamoto", "Okafor",
		"Novak", "Jensen", "Murphy", "Fernández", "Chen", "Schmidt", "Cohen", "Ivanova",
		"Larsen", "Moreau", "Tanaka", "Mensah", "Horvath", "Costa", "Walsh", "Berg",
		"Singh", "Lopez", "Weber", "Bianchi", "Hughes", "Price", "Reyes", "Ali",
	}
	// customerDomains never include contoso.example, the company's own
	// domain (the demo subject's address is the one exception).
	customerDomains = []string{
		"fabrikam.example", "northwindtraders.example", "adatum.example",
		"tailspintoys.example", "wingtiptoys.example", "litwareinc.example",
		"proseware.example", "woodgrovebank.example", "fourthcoffee.example",
		"alpineskihouse.example", "example.com", "example.net", "example.org",
	}
	cities = []string{
		"Seattle", "Redmond", "Bellevue", "Portland", "San Francisco", "New York",
		"Chicago", "Austin", "Boston", "Denver", "London", "Manchester", "Dublin",
		"Toronto", "Vancouver", "Honolulu",
	}
	usAreaCodes = []string{"206", "212", "312", "415", "425", "503", "617", "702", "808", "917"}

	// preferredContactMethods are Dynamics option set values
	// (1 Any, 2 Email, 3 Phone, 5 Mail), weighted.
	preferredContactMethods = []int{1, 2, 2, 2, 3, 3, 5}

	caseTitles = []string{
		"Billing discrepancy", "Cannot sign in", "Damaged delivery", "Refund request",
		"Subscription cancellation", "Product question", "Warranty claim",
		"Wrong delivery address", "Device not syncing", "Plan upgrade enquiry",
	}
	caseOpenings = []string{
		"Customer reports that the invoice total doesn't match the quote.",
		"Device stopped syncing after the latest update.",
		`Order arrived damaged; the box was crushed, contents "mostly" intact.`,
		"Customer was charged twice for the same order, once at checkout and again a week later.",
		"Password reset link expired before use.",
		"Customer asks to cancel the subscription at the end of the billing period.",
		"Warranty claim for a faulty charger, receipt attached.",
		`Delivery address was wrong on the order confirmation, customer says "I never lived there".`,
		`Customer cannot sign in, error says "account locked".`,
		"Question about upgrading the plan, wants a comparison of features, prices, and limits.",
	}
	// caseFollowUps may contain {phone} or {email}, replaced by the
	// contact's own values.
	caseFollowUps = []string{
		"Steps tried: restart, re-pair, factory reset.\nStill failing.",
		"Offered a partial credit; customer declined, escalated to supervisor.",
		"Sent the knowledge-base article on troubleshooting, awaiting reply.",
		"Customer asked to be called back on {phone}.",
		"Customer asked us to reply to {email} rather than by phone.",
		`Agent note: "customer was patient, thanked us twice".`,
		"Resolved on first contact.",
		"Escalated to tier two.\n\nWaiting for the warehouse, \"soon\" per their lead.",
	}
	// caseStatusCodes are Dynamics incident status reasons (1 In Progress,
	// 2 On Hold, 3 Waiting for Details, 4 Researching, 5 Problem Solved,
	// 1000 Information Provided, 6 Cancelled), weighted.
	caseStatusCodes = []string{"1", "1", "2", "3", "4", "5", "5", "5", "5", "1000", "6"}

	agentTitles = []string{
		"Customer Service Representative", "Customer Service Representative",
		"Senior Support Engineer", "Team Lead", "Customer Service Manager",
		"Knowledge Manager", "Billing Specialist",
	}
	businessUnits = []string{
		"Contoso Support Americas", "Contoso Support EMEA", "Contoso Support APAC", "Contoso Billing",
	}

	surveyComments = []string{
		"Quick and friendly, thanks!",
		`The agent was polite; however, the "fix" only lasted a day.`,
		"Took several calls to get this sorted.\nStill, the last agent was great.",
		"Nothing to add.",
		"",
		"",
		"Très bien — merci !",
		"Would have liked an email update, not just a text.",
		"Five stars, would recommend.",
		"Slow response, 'we'll call you back' never happened.",
		"Tab\tseparated thoughts: good, fast, fair.",
		"Great service 👍",
	}

	viewDetails = []string{
		"Opened contact form.",
		"Viewed contact from the case timeline.",
		"Opened contact form from search results.",
	}
	updateDetails = []string{
		"Updated mailing address.",
		"Changed preferred contact method.",
		"Corrected spelling of last name.",
	}
	caseUpdateDetails = []string{
		"Status changed from In Progress to On Hold.",
		"Added an internal note.",
		"Reassigned to another agent, \"needs billing expertise\".",
		"Priority raised to High.",
	}
	caseCreateDetails = []string{
		"Case created from an inbound email.",
		"Case created from a phone call.",
		"Case created from the web portal.",
	}
	caseResolveDetails = []string{
		"Case resolved: problem solved.",
		"Case resolved: information provided.",
	}
	exportDetails = []string{
		"Ran the 'Open cases by owner' report and exported it to Excel.",
		"Exported the customer satisfaction dashboard to PDF.",
	}
	signinDetails = []string{
		"Signed in from the Contoso corporate network.",
		"Signed in with multi-factor authentication.",
	}
)

// asciiFold drops diacritics and punctuation for use in email addresses.
var asciiFold = strings.NewReplacer(
	"é", "e", "ë", "e", "ø", "o", "Ø", "O", "Ł", "L", "ł", "l", "ñ", "n",
	"ü", "u", "ó", "o", "á", "a", "í", "i", "ç", "c", "ï", "i", "ö", "o",
	"ä", "a", "å", "a", "'", "", " ", "", "-", "",
)

// emailPart returns name folded to ASCII and lower-cased.
func emailPart(name string) string { return strings.ToLower(asciiFold.Replace(name)) }
