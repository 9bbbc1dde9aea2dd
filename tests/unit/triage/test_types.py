"""Dispute types from colloquial wording (no formal terms), one case per line."""

from __future__ import annotations

import pytest

from services.triage.rules import Rules

from .conftest import triage

CASES = [
    ("labour", "包工头带着我们干了半年，结账时说甲方没给钱，一分都没拿到"),
    ("labour", "在餐馆当服务员，老板不签合同，也不交保险，现在让我走人"),
    ("labour", "厂里流水线上切断了两根手指，老板说是我自己不小心"),
    ("labour", "试用期满了公司说不合格，不给转正也不给补偿"),
    ("medical", "孩子在诊所打完吊针后浑身起疹子，诊所说是过敏体质"),
    ("medical", "在镇卫生院拔了颗牙，结果拔错了，要求赔偿"),
    ("medical", "母亲在县人民医院做完手术第二天就去世了，家属要个说法"),
    ("property_mgmt", "小区垃圾没人清运，物业费照收不误"),
    ("property_mgmt", "地下车库的灯坏了半年，找管理处也不修"),
    ("land", "村里重新分地，把我家的地分少了两亩"),
    ("land", "邻村的人把界桩往我们这边挪了好几米"),
    ("land", "拆迁评估价太低，和拆迁办谈不拢"),
    ("marriage_family", "老公在外面有人了，要跟我分家产"),
    ("marriage_family", "爷爷留下的老房子，三个叔伯都想要"),
    ("marriage_family", "女儿出嫁时男方给的八万八，现在离了要我们退"),
    ("neighbour", "隔壁家装空调，外机对着我家窗户吹热风"),
    ("neighbour", "楼上小孩天天在家拍球，咚咚响"),
    ("neighbour", "对面那户把电动车推进楼道里充电，怕着火"),
    ("debt_contract", "表哥找我拿了三万块周转，说好年底还，现在人找不到了"),
    ("debt_contract", "给别人做了担保，借钱的人跑了，债主找我还钱"),
    ("debt_contract", "合伙开饭店亏了，合伙人不肯分担损失"),
    ("traffic", "下班骑电瓶车被一辆面包车别倒了"),
    ("traffic", "停在路边的车被人倒车撞了，对方不承认"),
    ("consumer", "在网上买的衣服跟图片不一样，店家不给退"),
    ("consumer", "办的游泳卡还剩二十次，游泳馆说要装修关门，不退钱"),
    ("consumer", "理发店推销办卡，说不办就不给剪完"),
    ("public_order", "晚上有人在我家门口撒尿，还骂人"),
    ("public_order", "几个年轻人在广场上拿酒瓶互相扔，砸坏了路灯"),
    ("public_order", "有人在网上发帖说我坏话，还P了我的照片"),
    ("labour", "跟着老乡在外面搞装修，活干完了，工头说钱还没结下来，拖了三个月"),
    ("labour", "快递站的分拣员被无故开了，押金也不退"),
    ("labour", "在养殖场喂猪，老板年底说亏了，只发一半工钱"),
    ("medical", "去私人牙诊所补牙，补完以后牙疼得更厉害了，去大医院一查说是补坏了"),
    ("medical", "孕检时医生没查出胎儿有问题，孩子生下来有缺陷"),
    ("medical", "在中医馆做艾灸被烫出好几个水泡"),
    ("property_mgmt", "物管把小区的公共车位租给外面的人，业主反而没地方停"),
    ("property_mgmt", "家里水管漏了打电话给物业，物业三天都没派人来修"),
    ("land", "村里修路要占我家两分田，补偿款一直没到位"),
    ("land", "我家承包的荒山被邻组的人种上了树"),
    ("land", "祖坟旁边被人开了地，两家吵起来"),
    ("marriage_family", "媳妇带着孩子回娘家快一年了，叫也叫不回来"),
    ("marriage_family", "三个儿子都不管老娘，老人住在猪圈旁边的偏房里"),
    ("marriage_family", "哥哥把爸妈的房子偷偷过户到自己名下"),
    ("neighbour", "楼上那家天天往下面倒水，我家晒的衣服都湿了"),
    ("neighbour", "隔壁养了十几只鸽子，到处是鸽子屎"),
    ("neighbour", "邻居家的树根把我家的院墙顶裂了"),
    ("debt_contract", "卖给收购站的玉米，对方打了欠条，拖了半年不给钱"),
    ("debt_contract", "房东不退押金，说墙被我弄脏了"),
    ("debt_contract", "朋友用我的身份证办了信用卡，刷了两万不还"),
    ("traffic", "在村口被一辆拖拉机蹭了，腿上擦破了皮"),
    ("traffic", "送孩子上学路上，电动车跟小车撞上了，车灯碎了"),
    ("consumer", "超市卖的鸡蛋一半都是坏的，找超市不给换"),
    ("consumer", "在手机店换屏幕，换了个翻新屏还收原装的钱"),
    ("consumer", "报了个旅游团，导游强迫我们进店购物"),
    ("public_order", "喝醉的人在饭店门口闹事，砸了人家的玻璃门"),
    ("public_order", "有人天天给我打骚扰电话，还发短信骂我"),
    ("public_order", "几个人在村里开设赌场，输了钱的人闹起来"),
    ("labour", "在砖厂搬砖一个月，老板说要扣掉伙食费，到手没几个钱"),
    ("labour", "给人家开货车跑长途，老板拖着运费和工钱不给"),
    ("labour", "月嫂干了四十天，雇主说照顾得不好只给一半钱"),
    ("labour", "在工地摔下来腰断了，包工头说没买保险不管"),
    ("medical", "老父亲在乡卫生院挂水后人就不行了"),
    ("medical", "做近视眼激光手术后看东西重影"),
    ("medical", "医院把我妈的病当成普通感冒治，耽误了病情"),
    ("property_mgmt", "小区大门的门禁坏了一个月，外卖员随便进出，物业不管"),
    ("property_mgmt", "物业公司要求每户交五百块电梯更换费"),
    ("land", "兄弟俩的田挨着，哥哥每年犁地都往弟弟那边多犁一犁"),
    ("land", "村里的集体山林被村干部偷偷卖给了老板"),
    ("land", "修高速占了我家的林地，补偿标准太低"),
    ("marriage_family", "结婚才半年，老公就动手打我，我要离"),
    ("marriage_family", "公婆嫌我生的是女儿，天天给我脸色看"),
    ("marriage_family", "爸爸再婚后，后妈不让我们回家"),
    ("neighbour", "隔壁把猪圈建在我家厨房窗户边上，臭得没法做饭"),
    ("neighbour", "对门的狗一到晚上就叫，吵得孩子睡不着"),
    ("neighbour", "楼下烧烤店的油烟全往我家飘"),
    ("debt_contract", "给人装修房子，房主说不满意，剩下的两万块尾款拖着不给"),
    ("debt_contract", "同学借了我的车去跑网约车，撞坏了不修"),
    ("debt_contract", "把房子租给人开店，租客半年没交房租了"),
    ("traffic", "被一辆没牌照的摩托车撞了，骑车的人跑了"),
    ("traffic", "倒车时把后面的电动车碰倒了，车主要我赔一千"),
    ("consumer", "买的新手机用了三天就黑屏，店里说是我摔的"),
    ("consumer", "美容院给我做的皮肤护理，脸上起了一片红疹子"),
    ("consumer", "充了三千块的洗车卡，洗车店换老板了不认"),
    ("public_order", "有人把我停在路边的车胎扎了"),
    ("public_order", "一个男的在公交车上对女孩动手动脚"),
    ("other", "村里评贫困户不公平，我家条件差却没评上"),
    # a place word or a relative named in passing does not outweigh the real subject
    ("other", "镇上取消了他家的低保，他天天去对面的镇政府吵"),
    ("other", "村股份经济合作社年底分红，外嫁女一分没拿到"),
    ("other", "儿子放学后一直没回家，家里人到处找，怀疑走失了"),
    ("other", "老人出殡那天，灵车被邻村的人挡在桥头不让过"),
    ("other", "两拨跳广场舞的大妈为了抢篮球场吵起来"),
    ("other", "村里的高龄老人补贴连着三个月没发"),
    ("debt_contract", "老王向邻居借了八千块，三年了一直没还"),
    ("debt_contract", "同村的刘某借走两万元给儿子买车，至今未还"),
    ("traffic", "在事故现场，对方司机不肯拿驾驶证出来"),
    ("traffic", "骑摩托车过村口减速带时摔伤了，要修路的赔"),
    # a vehicle named without any collision is not a traffic case
    ("public_order", "停在村口的货车挡风玻璃被人砸了"),
    ("public_order", "摩托车的油箱被人撬开，油被偷光了"),
    ("public_order", "放学路上有几个混混向学生索要保护费"),
    ("labour", "公司三个月没发夜班补贴"),
    ("neighbour", "楼下跳广场舞的音响开到半夜，吵得孩子睡不着"),
    # pasture, hill land and house foundations of the north and the southwest are land
    ("land", "两户为草场的网围栏吵，一户把另一户的羊赶出去了"),
    ("land", "两个组为那片坡地的山界吵了一上午"),
    ("land", "弟兄俩为老屋基的界线争"),
    ("marriage_family", "娘俩为老屋的钥匙吵"),
    ("marriage_family", "闺女嫁出去了，兄弟说她没份"),
    ("marriage_family", "我家那口子非要跟我离，房子车子都要"),
    ("marriage_family", "老人八十多了，儿女都不管"),
    ("public_order", "几个大孩子在路上欺负一个小学生，抢了他的零花钱"),
    ("public_order", "有个醉汉在街上拦车"),
]

# DOMAIN §3: a fight or a weapon in use with no dispute named underneath is public_order;
# a blade held to one's own throat is no fight, and a named dispute under a fight keeps its type
SURFACE = [
    ("public_order", "街上两个人打起来了，一个摸出一把水果刀比划"),
    ("public_order", "有个男的拎着一把砍刀在街口乱挥"),
    ("public_order", "两拨年轻人这会儿还在打"),
    ("other", "一男子在窗口情绪激动，拿水果刀架在自己脖子上"),
    ("neighbour", "两家为院墙的事还在打"),
    ("other", "一个老人在路边坐着哭"),
]


@pytest.mark.parametrize(("expected", "text"), SURFACE)
def test_fight_with_nothing_underneath_is_public_order(
    rules: Rules, expected: str, text: str
) -> None:
    assert triage(rules, text).dispute_type == expected


@pytest.mark.parametrize(("expected", "text"), CASES)
def test_colloquial_type(rules: Rules, expected: str, text: str) -> None:
    assert triage(rules, text).dispute_type == expected
