"""Hand-written risk patterns for English and Chinese, with the idioms they must ignore.

Why patterns beside a learned model: an explicit statement ("I want to kill myself",
"我不想活了", "he said he will kill me tonight") can be read and argued about, and every
match is named in the guard's explanation. The patterns are one of the risk model's three
readings (a flag for an explicit match here and now, one for a match in a discounted
context); they decide nothing alone. The hard part is what looks like risk but is not:
idioms ("this commute is killing me", "累死我了"), the past ("years ago I ..."), other
people ("my friend's grandfather died by suicide"), fiction ("in my novel ..."). Idioms
are masked out before matching; past, third-party and fiction contexts *discount* a match
unless the text also says it is happening now ("again", "tonight", "又", "今晚").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from psyinsight.counsel.safety.text import canonical, compact
from psyinsight.language import CJK_RANGE, has_cjk

CATEGORIES: tuple[str, ...] = ("medical_emergency", "danger_from_others", "suicide", "self_harm", "harm_others")
"""Risk categories, in order of precedence when several match: an overdose already taken
needs an ambulance before a hotline, and a person threatened by someone needs the police."""


def normalize(text: str) -> str:
    """The text as the guard reads it: ``text.canonical`` (dodges undone, lower case, single spaces)."""
    return canonical(text)


def _c(*parts: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in parts))


# --------------------------------------------------------------------------- English
_EN_ME = r"(?:myself|my (?:own )?(?:life|self))"
_EN_OBJ = (
    r"(?:him|her|them|you|someone|somebody|people|everyone|everybody|"
    r"my (?:\w+ ){0,2}(?:mom|mother|dad|father|stepdad|stepmom|brother|sister|wife|husband|"
    r"partner|boyfriend|girlfriend|ex|boss|coworkers?|co-workers?|colleagues?|roommate|"
    r"neighbou?r|teacher|baby|babies|newborn|child|children|kids?|son|daughter|classmates?|family)|"
    r"(?:the|those|these|that) (?:\w+ ){0,2}(?:people|guys?|kids?|baby|babies|newborn|infant|bullies|bastards?|teachers?|"
    r"class|school|office))"
)

EN_RISK: dict[str, re.Pattern[str]] = {
    "medical_emergency": _c(
        r"\b(?:took|taken|swallowed|ate|downed|popped|drank|chugged|injected|had) (?:\w+ ){0,4}"
        r"(?:pills|tablets|capsules|sleeping pills|painkillers|tylenol|paracetamol|acetaminophen|ibuprofen|aspirin|insulin|"
        r"antidepressants|meds|medication|bottle|pack|packet|bleach|antifreeze|poison|rat poison|pesticide|weed ?killer|drain cleaner)\b"
        r".{0,80}\b(?:ago|just now|earlier|dizzy|sick|throwing up|vomit\w*|numb|sleepy|drowsy|shaking|heart|scared|can't|cant|blurry|faint|weird|bad idea|regret)\b",
        r"\b(?:i|we|he|she|my \w+) (?:just |already )?(?:overdosed|od'?d|o\.d\.'?d)\b|\bi (?:took|have taken|just took) an overdose\b",
        r"\b(?:can't|cannot|can not) (?:stop the bleeding|breathe)\b|\bbleeding (?:won't|will not|doesn't|does not) stop\b|\b(?:so much|lots of|losing a lot of) blood\b",
        r"\b(?:passed out|unconscious|unresponsive|not breathing|won't wake up|isn't breathing|turning blue|having a seizure|foaming at the mouth)\b",
        r"\b(?:drank|swallowed|ate) (?:some |a cup of |the )?(?:bleach|antifreeze|pesticide|weed ?killer|drain cleaner|rat poison|lighter fluid|paint thinner)\b",
    ),
    "danger_from_others": _c(
        r"\b(?:he|she|they|someone|somebody|a (?:man|guy|woman)|my (?:\w+ ){0,2}(?:dad|father|stepdad|stepfather|mom|mother|stepmom|husband|wife|"
        r"partner|boyfriend|girlfriend|bf|gf|ex|ex-husband|ex-wife|brother|uncle|son|landlord|boss|pimp|family))"
        r"(?: \w+){0,3} (?:says?|said|threaten\w*|swore|swears|promised|keeps saying|is going to|'s going to|is gonna|'s gonna|will|'ll|wants to|tried to|is trying to|came to)"
        r"(?: (?:that )?(?:he|she|they|he's|she's|they're)(?:'d|'ll| will| would| is going to| is gonna| was going to| are going to| gonna)?)?"
        r"(?: \w+){0,2}? (?:to )?(?:kill|murder|hurt|beat|shoot|stab|strangle|choke|rape|burn|bury|end) (?:me|us|my (?:\w+ ){0,2}(?:family|kids?|children|mom|mother|dad|sister|brother|baby|son|daughter))\b",
        r"\b(?:threaten\w*|threats?) to (?:kill|murder|hurt|shoot|stab) (?:me|us|my)\b",
        r"\b(?:going to|gonna|will|'ll) (?:be )?(?:killed|murdered|shot|stabbed|beaten to death)\b",
        r"\b(?:is|are|keeps|kept|started|been|was|were) (?:\w+ )?(?:hitting|beating|choking|strangling|punching|kicking|raping|molesting|touching|hurting) (?:me|us|my (?:mom|mother|sister|brother|kids?))\b",
        r"\b(?:fear|afraid|scared|terrified) (?:for my life|(?:that )?(?:he|she|they)(?:'ll| will| is going to| are going to) (?:kill|hurt|find) (?:me|us))\b",
        r"\b(?:locked me in|won't let me (?:leave|go|out)|holding me|took my phone|tied me|trapped me)\b",
        r"\b(?:pointed|pointing|held|holding) (?:a |his |her |the )?(?:gun|knife|weapon) (?:at|to) (?:me|my)\b",
        r"\b(?:he|she|they)(?:'s| is| are|'re) (?:outside|at) my (?:door|house|window|work)\b.{0,60}\b(?:gun|knife|kill|hurt|threat\w*|scared|afraid)\b",
        r"\b(?:help me|please help)\b.{0,40}\b(?:he|she|they)(?:'s| is| are) (?:coming|here|hitting|hurting)\b",
    ),
    "suicide": _c(
        rf"\b(?:kill|killing|end|ending|take|taking|took) {_EN_ME}\b",
        r"\bkms\b",
        r"\bsuicidal\b",
        r"\b(?:commit|committing|attempt|attempting) suicide\b",
        r"\b(?:think|thinking|thought|thoughts) (?:of|about) (?:suicide|dying|killing myself|ending (?:it|my life|things))\b",
        r"\b(?:want|wanna|wanted|going|gonna|plan|planning|ready|decided|deserve) (?:to )?(?:die|be dead|not exist|stop existing)\b",
        r"\bi (?:just )?want to die\b",
        r"\b(?:don't|do not|no longer|not) (?:want|wish) to (?:live|be alive|be here|exist|wake up|go on)\b"
        r"(?! (?:in|at|with|near|there|here|a|an|this|that|the|my|vacation|holiday|trip|date|like)\b)",
        r"\bwish i (?:was|were) dead\b",
        r"\b(?:rather|better) (?:be )?dead\b",
        r"\bbetter off (?:dead|without me)\b",
        r"\bbetter off (?:if|when) i(?:'m| am| was| were)? (?:not|wasn't|weren't|gone|dead|never)\b",
        r"\b(?:want|going|ready|about) to jump\b",
        r"\b(?:no|any|what's the) (?:reason|point) (?:to|in|of) (?:keep )?(?:live|living|going on|being alive)\b",
        r"\bend (?:it|this) all\b",
        r"\b(?:just|finally) end (?:it|things)\b",
        r"\bend(?:ing)? (?:it|it all|things|everything|my life)\b(?! with)(?! (?:\w+ ){0,2}with).{0,20}\b(?:tonight|today|tomorrow|soon|this (?:week|weekend)|for good|now)\b",
        r"\b(?:death|dying|being dead)\b.{0,30}\b(?:peaceful|a relief|relief|easier|better|only (?:way|option)|sounds good|welcome)\b",
        r"\b(?:sleep|sleeping) (?:forever|and never wake)",
        r"\bswallow(?:ing)? (?:all|everything|the whole|a bottle|my pills|pills)",
        r"\bcan't see myself (?:living|being alive|alive|here)\b",
        r"\b(?:want|wish) (?:my life|it all|everything) to be over\b(?! so)",
        r"\b(?:drown|drowning|hang|hanging|shoot|shooting|poison|poisoning|starve) myself\b",
        r"\b(?:step|jump|walk|throw myself) in front of (?:a |the )?(?:bus|train|truck|car|traffic)\b",
        r"\b(?:crash|crashing|drive|driving) (?:my car )?(?:on purpose|off (?:a|the) (?:road|cliff|bridge))",
        r"\bwill be my last\b|\bsaid my goodbyes\b|\b(?:after|when) i'm gone\b|\b(?:relieved|happy|better off) when i'm dead\b",
        r"\bsuicide is the only\b|\b(?:stockpiling|saving up|hoarding) (?:them|my meds|pills)\b",
        r"\b(?:overdose|overdosing|od'ing)\b",
        r"\b(?:jump|jumping) (?:off|from|in front of)\b",
        r"\bhang(?:ing)? myself\b",
        r"\b(?:suicide|goodbye) (?:note|letter)s?\b",
        r"\b(?:painless|easiest|quickest|fastest) way to (?:die|go)\b",
        r"\bhow many pills\b",
        r"\bnever wake up\b",
        r"(?<!you )(?<!they )(?<!he )(?<!she )(?<!we )(?<!it )\b(?:won't|will not|not going to) be (?:here|around|alive)\b",
        r"\b(?:if|when) i(?:'m| am| was| were) gone\b",
        r"\bpain to stop (?:forever|permanently|for good)\b",
        r"\b(?:disappear|be gone) (?:for good|forever)\b",
        r"\bgiven? away my (?:\w+ ){0,3}(?:things|stuff|belongings|cat|dog|pets?)\b",
        r"\b(?:all|whole bottle of|bottle of) (?:my |the )?(?:sleeping )?pills\b",
        r"\b(?:saving|stockpiling|hoarding) (?:up )?(?:my )?(?:pills|meds|medication)\b",
        r"\bbought a (?:rope|gun)\b",
        r"\btook (?:a bunch of|a handful of|all (?:of )?(?:my|the)|too many|\d+) (?:\w+ )?(?:pills|tablets|meds|medication)\b",
        r"\b(?:last|final) (?:message|goodbye|words)\b",
        r"\bwon't need (?:them|it|these|those|any of (?:it|this)) (?:anymore|any more|where i'm going)\b|\bbecause i won't need\b",
        r"\b(?:done|finished) with (?:life|living|being alive)\b",
        r"\b(?:considering|contemplating|thinking about|think about) (?:ending (?:it|things|my life)|suicide|dying|death)\b",
        r"\b(?:happier|better|easier) (?:if|when) i(?:'m| am| was| were)? (?:dead|gone|not here)\b",
        r"\bmiss me if i (?:died|was gone|were gone|disappeared)\b",
        r"\bonly way out\b",
        r"\b(?:wrote|writing|written|write) (?:\w+ ){0,3}(?:letters?|notes?|messages?) .{0,30}(?:goodbye|farewell)\b",
        r"\b(?:don't|do not|not) (?:plan|expect|intend) (?:on |to )?(?:be|being) (?:here|around|alive)\b",
        r"\b(?:walk|walking|drive|driving|crash|crashing|jump|jumping) (?:my car )?(?:into|in front of) (?:the |a )?(?:ocean|sea|river|lake|traffic|wall|train|truck)\b",
        r"\b(?:finally|going to|gonna) (?:going to )?do it (?:tonight|today|and end)\b",
        r"\b(?:pills|rope|gun|knife) (?:is|are) ready\b",
        r"\bwant out of (?:this )?life\b",
        r"\b(?:use|using) (?:it|them|the gun|a gun|a knife|the knife) on myself\b",
        # indirect: means gathered or counted (a classic warning sign)
        r"\b(?:pills|tablets|meds|medication|sleeping pills)\b.{0,40}\b(?:enough|counted|stockpil\w*|hoard\w*|lethal|deadly|fatal)\b",
        r"\b(?:counted|stockpiled|hoarded) (?:\w+ ){0,3}(?:pills|tablets|meds|medication)\b",
        r"\b(?:lethal|deadly|fatal) (?:dose|amount)\b",
        r"\bhow (?:high|tall) (?:a |the )?(?:building|bridge|floor|roof|balcony) (?:has to|needs to|must) be\b",
        # indirect: preparation, finality, burden
        r"\b(?:made|making|wrote|writing) (?:a|my) will\b.{0,60}\b(?:before i|after i|when i'm|in case i)\b",
        r"\b(?:standing|sitting|stood) on (?:the |a )?(?:edge|ledge|rooftop|parapet)\b",
        r"\b(?:rehears\w*|practi[cs]\w*) (?:how (?:i would|i'd|to) )?(?:hang|hanging|jump|jumping|doing it|ending it)\b",
        r"\b(?:figured out|worked out|found) (?:how|a way) to (?:stop|end it|end things|do it)\b",
        r"\bmake myself disappear\b|\b(?:won't|will not) make it (?:to|through) (?:next|the end of|another)\b",
        r"\b(?:don't|do not) (?:think|see) (?:i'll|i will|myself) (?:be )?(?:alive|here|around|living) (?:by|at|in|next)\b",
        r"\bworld (?:would|will) be (?:a )?better (?:place )?without me\b",
        r"\b(?:i'm|i am) (?:just )?a burden\b.{0,60}\b(?:without me|gone|dead|not here|not around|disappear\w*)\b",
        r"\b(?:collecting|collected|saving|saved up|keeping) (?:\w+ ){0,2}(?:pills|tablets|meds|medication|antidepressants|painkillers)\b"
        r".{0,30}\binstead of taking\b",
        r"\b(?:which|what) (?:pills|medications?|drugs|meds) (?:are|is|would be) (?:lethal|deadly|fatal)\b",
        r"\b(?:left|leaving|wrote|written) (?:\w+ ){0,2}(?:letters?|notes?) for (?:my|everyone|the)\b",
        r"\bwho (?:gets|will get|should get) my (?:things|stuff|belongings)\b|\b(?:affairs|everything) in order\b",
        r"\b(?:rather|prefer to|want to|hope i) not wake up\b|\bhope i (?:don't|never) wake up\b",
        r"\b(?:standing|sitting) on (?:the |a )?(?:balcony|bridge|roof) (?:railing|edge|ledge)\b",
        r"\bvoices? (?:\w+ ){0,3}(?:tells?|telling|told|says?|saying|wants?) (?:me )?(?:to )?(?:die|kill myself|end it|jump|hurt myself)\b",
        # pinyin
        r"\bzi ?sha\b|\bbu ?xiang ?huo\b|\bwo (?:zhen de |hen |hao )?xiang ?si\b|\bqing ?sheng\b|\btiao ?lou\b|\bhuo bu xia ?qu\b",
    ),
    "self_harm": _c(
        r"\bself[- ]?(?:harm|harming|injury|injure|injuring|mutilat\w*)\b",
        r"(?<!they )(?<!he )(?<!she )(?<!you )(?<!someone )\b(?:cut|cutting|burn|burning|burned|burnt|hurt|hurting|harm|harming|hit|hitting|punch|punching|"
        r"punish|punishing|scratch|scratching|slice|slicing|carve|carving|bite|biting|starve|starving|"
        r"bang|banging) (?:myself|my (?:arms?|wrists?|legs?|thighs?|skin|body|head|face))\b",
        r"\b(?:until|till) (?:it|i|they) (?:bleeds?|bled)\b",
        r"\b(?:scald|scalding|scalded) myself\b|\b(?:use|used|put) a lighter on my (?:skin|arm|hand|wrist)\b",
        r"\brazor\b",
        r"\burge to (?:cut|hurt myself|self)",
        r"\bcarv\w* .{0,30}(?:skin|arms?|wrists?|legs?|thighs?)\b",
    ),
    "harm_others": _c(
        rf"\b(?:kill|killing|murder|murdering|hurt|hurting|stab|stabbing|shoot|shooting|strangle|strangling|"
        rf"poison|poisoning|beat|beating|choke|choking|smother|smothering|suffocate|suffocating|drown|drowning) {_EN_OBJ}\b",
        r"\b(?:shake|shaking) (?:the|my|our|her|his) (?:baby|newborn|infant)\b",
        rf"\b(?:using|use) it on {_EN_OBJ}\b",
        r"\bshoot up (?:the|my|a) \w+\b",
        r"\b(?:gun|knife|weapon) to (?:school|work|class|the office)\b",
        r"\bmake (?:them|him|her|everyone|the people \w+ \w+ me) (?:all )?pay\b",
        r"\bburn down\b",
        r"\brun (?:him|her|them) over\b",
        r"\bset fire to (?:\w+ ){0,3}with (?:him|her|them) in it\b",
    ),
}

COMPACT: dict[str, re.Pattern[str]] = {
    "suicide": re.compile(r"kill(?:ing)?myself|end(?:ing)?mylife|wan(?:t|na)todie|hang(?:ing)?myself|wanttobedead"),
    "self_harm": re.compile(r"(?:cut|cutting|hurt|hurting|burn|burning)myself"),
}
"""Phrases of several words still found when every space and symbol is removed
("k i l l m y s e l f", "kill-my-self"); read only when no other pattern matched."""

EN_IDIOMS = _c(
    r"\b(?:is|are|'s|'re|was|were) (?:\w+ )?killing (?:me|my \w+)\b",
    r"\bkilling (?:it|time)\b",
    r"\bkill(?:ed|s)? (?:it|time|two birds)\b",
    r"\b(?:could|would|'d) (?:kill|murder) (?:for|to have|a|an)\b",
    r"\b(?:could|would|'d) (?:strangle|throttle) (?:\w+ ){1,3}for\b",
    r"\b(?:is|are|'s|'re|gonna|going to|will|would|'ll|'d) (?:\w+ )?kill (?:me|us)\b(?=(?: \w+){0,4}? (?:if|when|for|because|lol|haha|lmao)\b)",
    r"\bdying (?:to|for|of|here)\b",
    r"\b(?:die|died|dying|dead) (?:of|from) (?:laughter|laughing|embarrassment|boredom|shame|cuteness)\b",
    r"\b(?:almost|nearly) died (?:laughing|when)\b",
    r"\bdied laughing\b",
    r"\bto die for\b",
    r"\b(?:bored|scared|worried|frightened|tired) to death\b",
    r"\bdead (?:tired|on my feet|serious|wrong|set)\b",
    r"\bover my dead body\b",
    r"\b(?:phone|battery|laptop|computer|car|plants?|flowers?|engine) (?:\w+ )?(?:died|is dead|was dead)\b",
    r"\bshoot me (?:a|an) \w+\b",
    r"\bcut (?:back|out|it out|class|corners|ties|down|sugar|carbs)\b",
    r"\bcut my (?:hair|nails|finger|bangs|fringe)\b",
    r"\bcut (?:\w+ ){1,3}out of my life\b",
    r"\bhurt my (?:back|knee|ankle|leg|arm|shoulder|neck|wrist|foot|hand)\b",
    r"\b(?:shoot|shooting) (?:for|hoops|a video|a film|photos?)\b",
    r"\byou're killing me\b",
)

EN_DISCOUNT = _c(
    # the past, and recovery
    r"\b(?:years|months|decades|a long time) ago\b",
    r"\bused to\b",
    r"\bwhen i was (?:a |in |younger|\d+|little|young)",
    r"\bback (?:then|in (?:high school|college|school|the day))\b",
    r"\bin (?:my|the) (?:teens|twenties|past)\b",
    r"\b(?:haven't|have not|hasn't|never) (?:done|did|felt|had|cut|hurt) \w*",
    r"\b(?:i'm|i am) (?:in a good place|doing (?:much |a lot )?better|better|stable)(?: now)?\b",
    r"\b(?:recovered|got through it|behind me|not anymore|glad i never)\b",
    r"\bin (?:college|high school|university|my school days)\b|\b(?:therapy|treatment|counsel+ing) helped\b",
    # other people, information
    r"\b(?:my|a|her|his|their) (?:\w+ )?(?:grandfather|grandmother|grandpa|grandma|uncle|aunt|cousin|friend|"
    r"neighbou?r|classmate|colleague)'?s? (?:\w+ )?(?:died|was killed|killed himself|killed herself|took (?:his|her) (?:own )?life)\b",
    r"\b(?:died by|lost \w+ to) suicide\b",
    r"\b(?:research|paper|essay|article|lecture|class|course|news|documentary|statistics|rates?|prevention|warning signs)\b",
    r"\bhow (?:can|do|should) (?:i|we|teachers?|parents?) (?:support|help|spot|recogni[sz]e)\b",
    r"\b(?:deals?|dealing) with \w+ patients\b",
    r"\b(?:asked|asks) (?:me )?(?:whether|if) i(?:'ve| have)? ever\b",
    # fiction and games
    r"\b(?:novel|story|stories|book|poem|play|movie|film|series|show|episode|game|screenplay|script|fanfic|"
    r"character|protagonist|villain|hero|detective|dragon|zombies?|rehears\w*)\b",
)

EN_PRESENT = _c(
    r"\b(?:again|tonight|today|right now|lately|these days|this week|this weekend|tomorrow|currently|still|"
    r"relapsed?|started|keep|can't stop)\b",
    r"\bi(?: really| just)? (?:want|wanna|plan|am going|'m going|will|'ll|am about)\b",
    r"\bnow i (?:want|feel|think|am going|'m going|keep)\b",
)

# --------------------------------------------------------------------------- Chinese
_CN_FAMILY = (
    r"我(?:的)?(?:爸|妈|爸爸|妈妈|父亲|母亲|继父|继母|后爸|后妈|老公|老婆|丈夫|妻子|男朋友|女朋友|男友|女友|前任|前夫|前妻|"
    r"哥哥|哥|舅舅|叔叔|公公|婆婆|老板|房东)"
)
_CN_OTHER = (
    r"(?:他|她|他们|她们|你|那个人|那些人|这个人|所有人|大家|"
    r"我(?:的)?(?:爸|妈|爸爸|妈妈|父亲|母亲|继父|继母|老公|老婆|丈夫|妻子|男朋友|女朋友|前任|老板|上司|同事|室友|"
    r"邻居|孩子|儿子|女儿|宝宝|同学|老师|哥哥|姐姐|弟弟|妹妹)|"
    r"(?:所有|那些)?(?:欺负|霸凌|伤害)(?:过)?我的人)"
)

CN_RISK: dict[str, re.Pattern[str]] = {
    "medical_emergency": _c(
        r"(?:吞|吃|喝)(?:了|下|掉)(?:一|半|大半|整|好几|十几|几十|\d+|很多|好多|一大把|一把)?(?:整)?(?:瓶|盒|板|片|粒|把|口|杯)?.{0,6}(?:药|安眠药|农药|百草枯|敌敌畏|老鼠药|鼠药|消毒水|84|洁厕|漂白|除草剂|降压药|胰岛素)"
        r".{0,30}(?:了|现在|刚才|刚刚|小时|分钟|头晕|想吐|吐了|难受|害怕|后悔|没力气|心跳|看不清|发麻|怎么办)",
        r"血(?:止不住|一直流|流了好多|流个不停)|止不住血|喘不上气|呼吸困难|昏迷|叫不醒|没有呼吸|不省人事|抽搐|口吐白沫|中毒了",
        r"(?:喝|吃)了农药|喝了(?:敌敌畏|百草枯|消毒水|84|洁厕灵)|吃了老鼠药|药物过量|吃多了药|药吃多了",
    ),
    "danger_from_others": _c(
        rf"(?:他|她|他们|有人|那个人|那个男的|{_CN_FAMILY})(?:一直|经常|又|天天)?(?:说|威胁|扬言|放话|发誓|要|会|想|准备|拿刀|拿着刀).{{0,8}}?(?:要|会)?(?:去)?"
        r"(?:杀了|杀死|弄死|打死|砍死|捅死|掐死|烧死|杀|砍|捅)(?:我|我们|我全家|我妈|我爸|我孩子|孩子|我们全家|全家)",
        rf"(?:{_CN_FAMILY}|他|她|有人)(?:又|一直|天天|经常|正在)?(?:在)?(?:打我|揍我|掐我|踢我|家暴|虐待我|性侵|强奸|侵犯我|猥亵)",
        r"家暴|被(?:打|揍|掐|绑|关|锁|跟踪|威胁|强奸|性侵|侵犯|囚禁|控制)(?:了|着|起来)?|把我(?:锁|关|绑)(?:在|起来)|不让我(?:走|出门|离开)|跟踪我|拿(?:刀|枪)(?:对着|指着|抵着)我",
        r"(?:怕|害怕|担心)(?:他|她|他们)(?:会)?(?:杀了|弄死|打死|杀)我|我会被(?:杀|打死|弄死)|今晚(?:会|就)?(?:被|要被)(?:杀|打死|弄死)",
    ),
    "suicide": _c(
        r"自杀|轻生|寻死|自尽|了结(?:自己|生命|一切)|结束(?:自己的?)?生命|结束这一切",
        r"不想(?:再)?活|活不下去|不想活下去|活着(?:没有?|毫无|有什么)(?:任何)?(?:意思|意义)|活着对我来说.{0,6}没有意义|找不到活下去的理由|生不如死",
        r"(?:想|(?<![快就])要|准备|打算|好想)(?:去)?死(?!你|我了|人了|了(?:啊|吧)?[，,。!！]?$)|(?:快|就)要去死",
        r"死了(?:算了|就好了|就解脱|也好|更好)|不如死了|死了.{0,4}(?:轻松|解脱)",
        r"(?:跳楼|跳河|跳海|跳江|跳崖|跳下去|从楼上跳|上吊|割腕|烧炭|服毒|喝农药|吞药|吞了一把药|卧轨)",
        r"(?:安眠药|药).{0,6}(?:全吃|吃掉|一次吃|一整瓶|吞)|吃.{0,4}(?:一整瓶|整瓶|一把)药|吞了.{0,4}药|多少片药会死",
        r"遗书|一了百了|离开这个世界|从这个世界消失|消失了对.{0,6}好|不会再麻烦",
        r"(?:没有我|我死了|如果我死).{0,10}(?:更好|轻松|解脱|在乎)|(?:在乎|关心)我死不死",
        r"不(?:想|要)再醒|再也不醒|永远睡着",
        r"不痛苦的死法|怎么死|死的方法|自杀的方法",
        r"买好了(?:木炭|炭|绳子)|准备好(?:了)?(?:木炭|绳子)|(?:木炭|绳子)(?:已经)?(?:准备|买)好",
        r"东西.{0,4}分掉|差不多可以走了|(?:以后|再也)用不上了|最后一次(?:跟你|和你)说话",
        r"(?:死|一死|走了|不在了|离开).{0,6}解脱|(?:永远|彻底)(?:地)?解脱|解脱.{0,4}(?:去死|离开这个世界)",
        r"(?:药|安眠药).{0,10}(?:够了|足够|数过|数了)",
        r"(?:累赘|拖累|负担).{0,15}(?:不在了|走了|消失|死了|没有我)",
        r"站在(?:天台|楼顶|顶楼|桥上|河边|江边|窗台|阳台边)",
        r"(?:撑|熬|活)不(?:过|到)(?:今晚|今天|明天|这周|这个月|下个月|这一年|年底)",
        r"死了(?:就|才|以后)?(?:不会|不用|再也不)|死了比活着|不如死了",
        r"(?:跟|和|向)(?:这个)?世界(?:告别|说再见)|告别这个世界|(?:跟|和)大家告别|我已经不在了|(?:我的|自己的)后事|(?:安排|交代)(?:好)?(?:了)?(?:我的|自己的)?后事",
        r"从(?:窗户|窗台|阳台|楼顶|天台|楼上|桥上)(?:上)?(?:跳|往下跳)|跳(?:桥|江|河|海|楼)",
        r"(?:安眠药|农药|刀片|绳子|木炭|楼顶|天台|江边|河边|桥上|铁轨|药).{0,12}(?:今晚|今天|明天|这周|打算|准备|决定)"
        r"|(?:今晚|明天|打算|准备|决定|准备好了).{0,12}(?:安眠药|农药|刀片|绳子|木炭|楼顶|天台|江边|河边|桥上|铁轨)",
        r"(?:买|攒|存)了(?:很多|好多|一堆|一大堆)?(?:安眠药|药)|这周末就走|放弃生命|永远(?:地)?消失|让自己(?:永远)?消失",
        r"(?:结束|了结)(?:这种|这一切|所有的?)?(?:痛苦)?.{0,4}永远|想(?:彻底|早点)结束|活够了",
        r"紫砂|想噶|去噶|不想醒来|(?:声音|幻听).{0,8}(?:让|叫|要)我(?:去)?(?:死|自杀|跳)|致死量|多少片.{0,4}(?:会|能)?死|吃多少.{0,6}(?:会|能|才能)死|怎么(?:才能)?死",
        r"(?:大家|你们|家人|爸妈|所有人)(?:没有我|没了我).{0,6}(?:更好|轻松|解脱|开心)|(?:我|我这种人)(?:不在|消失|死)了.{0,8}(?:更好|轻松|省心|开心)",
    ),
    "self_harm": _c(
        r"自残|自伤|自虐",
        r"(?:伤害|惩罚|折磨)自己",
        r"(?:割|划|烫|烧|掐|打|咬|抓|砸)(?:了)?(?:自己|手腕|手臂|胳膊|大腿)",
        r"(?:手腕|手臂|胳膊|大腿|身上|肚子)上?(?:划|割)|(?:扎|抽|烫|掐|划|割)自己|自己(?:划|割|弄|烫)的(?:伤|口子)|刀片|用刀(?:划|割)|烟头烫|(?:直到|到)(?:流血|出血)|头破血流|拿头撞墙|用头撞墙",
    ),
    "harm_others": _c(
        rf"(?:杀了|杀掉|杀死|弄死|捅死|砍死|打死|掐死|毒死|捅|砍了?|杀|伤害|报复){_CN_OTHER}",
        rf"把{_CN_OTHER}(?:杀|弄死|捅|砍|打死|掐死)",
        r"(?:捅|砍|掐|毒|弄)死(?:他|她|他们|你)|一刀砍",
        r"同归于尽|血债血偿|下毒|下药|放毒|毒药|放火(?:把|烧)",
        rf"捅了?{_CN_OTHER}|(?:撞死|打断){_CN_OTHER}|打断(?:他|她)的腿|准备了刀|让(?:那些人|他们|他|她)(?:都)?去死|(?:孩子|宝宝)从楼上扔",
        r"(?:带|拿)(?:着)?刀(?:去|到)|刀已经准备好|把刀带到",
        r"报复.{0,8}(?:刀|杀|血|死)|(?:刀|杀).{0,8}报复|去学校报复",
    ),
}

CN_IDIOMS = _c(
    r"(?:笑|累|热|冷|饿|困|烦|气|吓|急|忙|懒|丑|帅|美|疼|痛|渴|闷|愁|馋|难|羡慕|无聊|尴尬|开心|高兴|紧张|"
    r"担心|心疼|后悔|郁闷|香|酸|辣|挤|吵|晒|冻)(?:得)?(?:要)?死(?:了|我了|人了|啦|啊|的|我)?",
    r"想死你|想死我了",
    f"[{CJK_RANGE}]得(?:要)?(?:死|半死)(?:了)?",
    r"死机|死党|死对头|死循环|死心|死磕|该死的|作死|打死(?:我)?也不|要死要活",
    r"(?:会|非|得)(?:把我)?(?:打死|杀了)我(?:不可|的|吧)?|(?:打死|杀了)我(?:不可|的)",
    r"剧本杀|狼人杀|秒杀|杀毒|杀青|杀价|杀时间|杀杀时间|杀手锏|杀菌|杀虫",
    r"剪(?:了|坏了)?(?:个)?头发|切到手|扭伤|把腰伤了|伤了腰",
)

CN_DISCOUNT = _c(
    r"以前|曾经|那时候?|小时候|当年|(?<!睡)过去(?!了)|(?:几|好几|多|\d+)年前|已经(?:走出来|好了|康复|很多年没有|\S{0,3}年没有)",
    r"现在(?:已经)?(?:走出来了?|好多了|好了|康复了?|挺好|很好|很多年没有|\S{0,3}年没有)|都过去了|没有这样做",
    r"从未想过|从来没(?:有)?想过|从没想过",
    r"我的?(?:好)?(?:朋友|同学|同事|室友|邻居|亲戚|表哥|表姐|表妹|表弟)",
    r"小说|故事|剧本|电影|电视剧|话剧|角色|主角|反派|情节|游戏|boss|武侠|侦探|凶手|演",
    r"新闻|报道|论文|研究|课上|纪录片|统计|预防|迹象|安慰|病人|患者|医生|护士|学生|老师应该|怎样帮助|如何帮助|问我有没有|我说没有|怎么跟(?:他|她)聊",
)

CN_PRESENT = _c(
    r"我又|又开始|又想|又割|又划|我(?:想(?!知道|了解|问|请教|学)|要|打算|准备|决定)|最近|现在(?:又|还|就|很想|特别想|真的|想|要)|今晚|今天|明天|这几天|还是|仍然|一直|控制不住|忍不住|停不下来|刚刚|刚才|正在"
)


@dataclass
class PatternMatch:
    """What the patterns found in one message."""

    category: str | None = None
    """The first risk category matched (``CATEGORIES`` order), or None."""
    matches: list[str] = field(default_factory=list)
    """The matched spans, for the audit log."""
    discounted: bool = False
    """A past / third-party / fiction context without a here-and-now cue."""

    @property
    def hit(self) -> bool:
        return self.category is not None


def match_patterns(text: str) -> PatternMatch:
    """Match ``text`` against both languages' patterns (messages mix scripts) after masking idioms."""
    norm = normalize(text)
    result = PatternMatch()
    tables = [(EN_IDIOMS, EN_RISK, EN_DISCOUNT, EN_PRESENT)]
    if has_cjk(norm):
        tables.insert(0, (CN_IDIOMS, CN_RISK, CN_DISCOUNT, CN_PRESENT))
    discount = present = False
    for idioms, risk, disc, pres in tables:
        masked = idioms.sub(" ", norm)
        for category in CATEGORIES:
            found = [m.group(0) for m in risk[category].finditer(masked)]
            if found:
                result.matches.extend(found)
                if result.category is None:
                    result.category = category
        discount = discount or bool(disc.search(masked))
        # "I'm doing better now" is recovery, not a here-and-now cue: drop those spans first.
        present = present or bool(pres.search(disc.sub(" ", masked)))
    if not result.hit:
        squeezed = compact(text)
        for category, pattern in COMPACT.items():
            found = pattern.search(squeezed)
            if found:
                result.category, result.matches = category, [found.group(0)]
                break
    result.discounted = result.hit and discount and not present
    return result
